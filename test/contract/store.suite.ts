import type { Test } from 'tap';
import type { Namespace, RotateRequest, SessionRecord, StateStore } from '../../src/store/types.js';
import { PERSISTENT_NAMESPACES } from '../../src/store/types.js';

/**
 * The StateStore contract (src/store/types.ts), run by every implementation: memory, file, and later
 * redis. Implementation-agnostic: only the public interface, real time, and TTLs in whole seconds.
 */
export interface StoreUnderTest {
  store: StateStore;
  /** Opens the same backing state again (after `store.close()`); persistent stores only. */
  reopen?: () => Promise<StateStore>;
  cleanup?: () => Promise<void>;
}

const ALL: readonly Namespace[] = ['clients', 'consents', 'sessions', 'codes', 'codeUses', 'ratelimit', 'mcpSessions'];
const HOUR = 3_600_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function sessionRecord(sid: string, now: number, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    sid,
    clientId: 'client-1',
    subject: 'alice',
    groups: ['staff'],
    scope: 'mcp',
    resource: 'https://gateway.example/mcp',
    generation: 1,
    rotatedAt: now - 10_000,
    createdAt: now - 60_000,
    lastUsedAt: now - 10_000,
    idleExpiresAt: now + HOUR,
    absoluteExpiresAt: now + 24 * HOUR,
    ...overrides,
  };
}

function rotation(sid: string, presentedGeneration: number, now: number, overrides: Partial<RotateRequest> = {}): RotateRequest {
  return { sid, presentedGeneration, now, graceMs: 60_000, idleTtlMs: HOUR, ...overrides };
}

export function storeContract(t: Test, name: string, factory: () => Promise<StoreUnderTest>): void {
  /** A fresh store for one subtest, closed and cleaned up when it ends. */
  async function fresh(t: Test): Promise<StoreUnderTest & { current: () => StateStore; reopenStore: () => Promise<StateStore> }> {
    const subject = await factory();
    let current = subject.store;
    t.teardown(async () => {
      await current.close().catch(() => undefined);
      await subject.cleanup?.();
    });
    return {
      ...subject,
      current: () => current,
      reopenStore: async () => {
        await current.close();
        current = await subject.reopen!();
        return current;
      },
    };
  }

  t.test(`${name}: state store contract`, async (t) => {
    t.test('get / put / delete / list, isolated per namespace', async (t) => {
      const { store } = await fresh(t);
      t.equal(await store.healthy(), true, 'healthy');
      for (const ns of ALL) t.equal(await store.get(ns, 'k'), undefined, `${ns}: nothing yet`);
      for (const ns of ALL) await store.put(ns, 'k', { ns, n: 1 });
      for (const ns of ALL) {
        t.same(await store.get(ns, 'k'), { ns, n: 1 }, `${ns}: its own value`);
        t.same(await store.list(ns), [{ key: 'k', value: { ns, n: 1 } }], `${ns}: list holds only its own entry`);
      }
      await store.put('clients', 'k', { replaced: true });
      t.same(await store.get('clients', 'k'), { replaced: true }, 'put replaces');
      await store.put('clients', 'other', { n: 2 });
      const listed = (await store.list<{ n?: number }>('clients')).sort((a, b) => a.key.localeCompare(b.key));
      t.same(listed, [{ key: 'k', value: { replaced: true } }, { key: 'other', value: { n: 2 } }], 'list returns every entry');

      t.equal(await store.delete('consents', 'k'), true, 'delete reports a deletion');
      t.equal(await store.delete('consents', 'k'), false, 'a second delete finds nothing');
      t.equal(await store.delete('consents', 'never'), false, 'deleting a missing key is not an error');
      t.equal(await store.get('consents', 'k'), undefined, 'deleted');
      t.same(await store.list('consents'), [], 'list is empty after delete');
      for (const ns of ALL.filter((n) => n !== 'consents' && n !== 'clients')) {
        t.same(await store.get(ns, 'k'), { ns, n: 1 }, `${ns}: untouched by the other namespaces' writes`);
      }
    });

    t.test('TTL: expired entries disappear from get, list and takeOnce; put without TTL clears it', async (t) => {
      const h = await fresh(t);
      let store = h.store;
      for (const ns of ALL) {
        await store.put(ns, 'short', { ns }, 1);
        await store.put(ns, 'mid', { ns }, 2);
        await store.put(ns, 'long', { ns }, 3600);
        await store.put(ns, 'forever', { ns });
      }
      await store.put('clients', 'renewed', { v: 1 }, 1);
      await store.put('clients', 'renewed', { v: 2 });
      await store.put('codes', 'take-late', { v: 1 }, 1);
      t.equal(await store.increment('ratelimit', 'counter', 1), 1, 'a counter starts at 1');
      t.equal(await store.increment('ratelimit', 'counter', 1), 2, 'and counts');
      await sleep(1_150);
      for (const ns of ALL) {
        t.equal(await store.get(ns, 'short'), undefined, `${ns}: expired entry is gone`);
        t.same(await store.get(ns, 'mid'), { ns }, `${ns}: a live TTL entry stays`);
        t.same(await store.get(ns, 'forever'), { ns }, `${ns}: an entry without TTL stays`);
        const keys = (await store.list(ns)).map((e) => e.key).sort();
        t.same(keys, ns === 'clients' ? ['forever', 'long', 'mid', 'renewed'] : ['forever', 'long', 'mid'], `${ns}: list skips expired entries`);
      }
      t.same(await store.get('clients', 'renewed'), { v: 2 }, 'a put without TTL replaced the TTL entry');
      t.equal(await store.takeOnce('codes', 'take-late'), undefined, 'an expired code cannot be taken');
      t.equal(await store.increment('ratelimit', 'counter', 1), 1, 'an expired counter starts again at 1');
      if (!h.reopen) return;

      store = await h.reopenStore();
      for (const ns of PERSISTENT_NAMESPACES) {
        t.equal(await store.get(ns, 'short'), undefined, `${ns}: still expired after reopen`);
        t.same(await store.get(ns, 'mid'), { ns }, `${ns}: a live TTL entry survives a reopen`);
      }
      await sleep(1_000);
      for (const ns of PERSISTENT_NAMESPACES) {
        t.equal(await store.get(ns, 'mid'), undefined, `${ns}: and still expires on time after the reopen`);
        t.same((await store.list(ns)).map((e) => e.key).sort(), ns === 'clients' ? ['forever', 'long', 'renewed'] : ['forever', 'long'], `${ns}: list after reopen`);
      }
    });

    t.test('takeOnce: exactly one of 50 concurrent callers gets the value', async (t) => {
      const { store } = await fresh(t);
      for (const ns of ['codes', 'consents'] as const) {
        await store.put(ns, 'once', { ns, secretHash: 'abc' });
        const results = await Promise.all(Array.from({ length: 50 }, () => store.takeOnce(ns, 'once')));
        const winners = results.filter((r) => r !== undefined);
        t.equal(winners.length, 1, `${ns}: one winner`);
        t.same(winners[0], { ns, secretHash: 'abc' }, `${ns}: the winner gets the value`);
        t.equal(await store.get(ns, 'once'), undefined, `${ns}: the value is gone`);
        t.equal(await store.takeOnce(ns, 'once'), undefined, `${ns}: a later take gets nothing`);
      }
      t.equal(await store.takeOnce('codes', 'missing'), undefined, 'taking a missing key gets nothing');
    });

    t.test('increment: counts atomically, per key', async (t) => {
      const { store } = await fresh(t);
      t.equal(await store.increment('ratelimit', 'a', 60), 1);
      t.equal(await store.increment('ratelimit', 'a', 60), 2);
      t.equal(await store.increment('ratelimit', 'b', 60), 1, 'keys count separately');
      t.equal(await store.increment('codeUses', 'a', 60), 1, 'namespaces count separately');
      const results = await Promise.all(Array.from({ length: 50 }, () => store.increment('ratelimit', 'c', 60)));
      t.same([...results].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i + 1), '50 concurrent increments get 1..50');
      t.equal(await store.increment('ratelimit', 'c', 60), 51);
    });

    t.test('values are deep-copied in and out', async (t) => {
      const { store } = await fresh(t);
      const original = { name: 'x', nested: { list: [1, 2] } };
      await store.put('clients', 'c', original);
      original.nested.list.push(3);
      original.name = 'changed';
      t.same(await store.get('clients', 'c'), { name: 'x', nested: { list: [1, 2] } }, 'mutating the put object does not change the store');
      const got = await store.get<typeof original>('clients', 'c');
      got!.nested.list.push(99);
      t.same(await store.get('clients', 'c'), { name: 'x', nested: { list: [1, 2] } }, 'mutating a returned object does not change the store');
      const [listed] = await store.list<typeof original>('clients');
      listed!.value.nested.list.length = 0;
      t.same(await store.get('clients', 'c'), { name: 'x', nested: { list: [1, 2] } }, 'mutating a listed object does not change the store');

      const now = Date.now();
      await store.put('sessions', 's', sessionRecord('s', now));
      const result = await store.rotateRefresh(rotation('s', 1, now));
      if (result.status !== 'rotated') throw new Error(`expected rotated, got ${result.status}`);
      result.session.groups.push('admin');
      result.session.generation = 100;
      const stored = await store.get<SessionRecord>('sessions', 's');
      t.same(stored?.groups, ['staff'], 'mutating a rotation result does not change the store');
      t.equal(stored?.generation, 2);
    });

    t.test('rotateRefresh: every branch', async (t) => {
      const { store } = await fresh(t);
      const now = Date.now();

      t.same(await store.rotateRefresh(rotation('missing', 1, now)), { status: 'invalid' }, 'missing family → invalid');

      await store.put('sessions', 'a', sessionRecord('a', now));
      const rotated = await store.rotateRefresh(rotation('a', 1, now));
      t.same(rotated, {
        status: 'rotated',
        session: sessionRecord('a', now, { generation: 2, rotatedAt: now, lastUsedAt: now, idleExpiresAt: now + HOUR }),
      }, 'current generation → rotated: generation + 1, rotatedAt/lastUsedAt = now, idle end slides');
      t.same(await store.get('sessions', 'a'), (rotated as { session: SessionRecord }).session, 'the rotation is stored');

      const grace = await store.rotateRefresh(rotation('a', 1, now + 30_000));
      t.same(grace, {
        status: 'grace',
        session: sessionRecord('a', now, { generation: 2, rotatedAt: now, lastUsedAt: now + 30_000, idleExpiresAt: now + HOUR }),
      }, 'previous generation within the window → grace: same generation, only lastUsedAt moves');
      t.equal((await store.get<SessionRecord>('sessions', 'a'))?.lastUsedAt, now + 30_000, 'lastUsedAt is stored');
      t.equal((await store.rotateRefresh(rotation('a', 1, now + 60_000))).status, 'grace', 'the window is inclusive');

      const late = await store.rotateRefresh(rotation('a', 1, now + 60_001));
      t.equal(late.status, 'reuse', 'previous generation after the window → reuse');
      t.equal((late as { session: SessionRecord }).session.generation, 2, 'reuse returns the revoked record');
      t.equal(await store.get('sessions', 'a'), undefined, 'the family is gone');
      t.same(await store.rotateRefresh(rotation('a', 2, now + 60_002)), { status: 'invalid' }, 'even the current token is now invalid');

      await store.put('sessions', 'old', sessionRecord('old', now, { generation: 5 }));
      const older = await store.rotateRefresh(rotation('old', 3, now));
      t.equal(older.status, 'reuse', 'an older generation → reuse');
      t.equal((older as { session: SessionRecord }).session.generation, 5);
      t.equal(await store.get('sessions', 'old'), undefined, 'family gone after an older generation');

      await store.put('sessions', 'future', sessionRecord('future', now, { generation: 5 }));
      t.equal((await store.rotateRefresh(rotation('future', 6, now))).status, 'reuse', 'a generation never issued → reuse');
      t.equal(await store.get('sessions', 'future'), undefined, 'family gone after a future generation');

      await store.put('sessions', 'idle', sessionRecord('idle', now, { idleExpiresAt: now + 5_000 }));
      t.same(await store.rotateRefresh(rotation('idle', 1, now + 5_000)), { status: 'invalid' }, 'at the idle end → invalid');
      t.equal(await store.get('sessions', 'idle'), undefined, 'an idle-expired family is deleted');

      await store.put('sessions', 'abs', sessionRecord('abs', now, { absoluteExpiresAt: now + 5_000 }));
      t.same(await store.rotateRefresh(rotation('abs', 1, now + 5_000)), { status: 'invalid' }, 'at the absolute end → invalid');
      t.equal(await store.get('sessions', 'abs'), undefined, 'an absolutely expired family is deleted');

      await store.put('sessions', 'cap', sessionRecord('cap', now, { absoluteExpiresAt: now + 1_000 }));
      const capped = await store.rotateRefresh(rotation('cap', 1, now));
      t.equal((capped as { session: SessionRecord }).session.idleExpiresAt, now + 1_000, 'the idle end never passes the absolute end');

    });

    t.test('rotateRefresh: 50 concurrent presentations of the current token → one rotated, 49 grace', async (t) => {
      const { store } = await fresh(t);
      const now = Date.now();
      await store.put('sessions', 'race', sessionRecord('race', now, { generation: 7 }));
      const results = await Promise.all(Array.from({ length: 50 }, () => store.rotateRefresh(rotation('race', 7, now))));
      const by = (status: string) => results.filter((r) => r.status === status).length;
      t.equal(by('rotated'), 1, 'exactly one rotated');
      t.equal(by('grace'), 49, 'the others get grace');
      t.same([...new Set(results.map((r) => (r as { session: SessionRecord }).session.generation))], [8], 'all see the same successor');
      t.equal((await store.get<SessionRecord>('sessions', 'race'))?.generation, 8);
    });

    t.test('persistent namespaces survive a reopen', async (t) => {
      const h = await fresh(t);
      if (!h.reopen) {
        t.pass(`${name} has no reopen: nothing persists`);
        return;
      }
      const store = h.store;
      const keys = ['plain', '__proto__', 'with/slash~tilde', 'ünïcødé', ''];
      for (const ns of PERSISTENT_NAMESPACES) {
        for (const key of keys) await store.put(ns, key, { ns, key, nested: { deep: [1, { x: null }] } });
      }
      await store.put('clients', 'deleted', { gone: true });
      await store.delete('clients', 'deleted');
      await store.put('consents', 'taken', { gone: true });
      await store.takeOnce('consents', 'taken');
      const now = Date.now();
      await store.put('sessions', 'fam', sessionRecord('fam', now));
      await store.rotateRefresh(rotation('fam', 1, now));
      await store.put('sessions', 'revoked', sessionRecord('revoked', now, { generation: 3 }));
      await store.rotateRefresh(rotation('revoked', 1, now));

      const again = await h.reopenStore();
      for (const ns of PERSISTENT_NAMESPACES) {
        for (const key of keys) t.same(await again.get(ns, key), { ns, key, nested: { deep: [1, { x: null }] } }, `${ns}/${JSON.stringify(key)} survives`);
      }
      t.equal(await again.get('clients', 'deleted'), undefined, 'a deletion survives');
      t.equal(await again.get('consents', 'taken'), undefined, 'a take survives');
      t.equal((await again.get<SessionRecord>('sessions', 'fam'))?.generation, 2, 'a rotation survives');
      t.equal(await again.get('sessions', 'revoked'), undefined, 'a family revocation survives');
      t.equal((await again.rotateRefresh(rotation('fam', 1, now + 1_000))).status, 'grace', 'the grace window still works after reopen');
      t.equal((await again.rotateRefresh(rotation('fam', 2, now + 2_000))).status, 'rotated', 'and rotation continues from the stored generation');
    });
  });
}
