import t from 'tap';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { RedisStore } from '../../src/store/redis.js';
import { openStore } from '../../src/store/index.js';
import { StoreUnavailableError, type SessionRecord, type StateStore } from '../../src/store/types.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { startRedis } from '../helpers/redis.js';
import { sessionRecord, storeContract } from './store.suite.js';

// One redis-server for the contract suite and the Redis-specific cases (each store gets its own key
// prefix); the outage test below has its own server to stop and restart.
t.test('redis store on a shared redis-server', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  let n = 0;
  /** A fresh key prefix per store: the subtests share one redis-server. */
  const prefix = () => `gh${++n}:`;
  const open = (keyPrefix: string, logger = silentLogger) => RedisStore.open(redis.url, { keyPrefix, logger });

  storeContract(t, 'redis', async () => {
    const keyPrefix = prefix();
    // reopen = a second client on the same Redis: what one replica wrote, the next one reads.
    return { store: await open(keyPrefix), reopen: () => open(keyPrefix) };
  });

  t.test('redis: key prefixes isolate two stores on one Redis', async (t) => {
    const a = await open('tenant-a:');
    const b = await open('tenant-b:');
    t.teardown(async () => { await a.close(); await b.close(); });
    await a.put('clients', 'same', { owner: 'a' });
    await b.put('clients', 'same', { owner: 'b' });
    await a.put('sessions', 's', sessionRecord('s', Date.now()));
    t.same(await a.get('clients', 'same'), { owner: 'a' });
    t.same(await b.get('clients', 'same'), { owner: 'b' });
    t.same(await b.list('sessions'), [], 'b lists none of a\'s sessions');
    t.same((await b.rotateRefresh({ sid: 's', presentedGeneration: 1, now: Date.now(), graceMs: 1000, idleTtlMs: 60_000 })).status, 'invalid', 'b cannot rotate a\'s session');
    t.equal(await b.takeOnce('clients', 'same').then((v) => (v as { owner: string }).owner), 'b');
    t.same(await a.get('clients', 'same'), { owner: 'a' }, 'a take on b leaves a alone');
    t.equal(await b.increment('ratelimit', 'x', 60), 1);
    t.equal(await a.increment('ratelimit', 'x', 60), 1, 'counters are per prefix');
  });

  t.test('redis: list walks more than 1,000 keys and takes glob characters in prefix and keys literally', async (t) => {
    const keyPrefix = `g*l?o[b]\\-^${++n}:`;
    const store = await open(keyPrefix);
    // A prefix that the unescaped pattern "g*l?o[b]..." would also match.
    const lookalike = await open(`gXXlYob\\-^${n}:`);
    t.teardown(async () => { await store.close(); await lookalike.close(); });
    const COUNT = 2_500;
    await Promise.all(Array.from({ length: COUNT }, (_, i) => store.put('clients', `client-${i}`, { i })));
    await store.put('clients', 'star*[key]?', { special: true });
    await store.put('clients', 'with:colon', { colon: true });
    await store.put('consents', 'client-0', { other: 'namespace' });
    await lookalike.put('clients', 'intruder', { no: true });
    const listed = await store.list<{ i?: number }>('clients');
    t.equal(listed.length, COUNT + 2, 'every key, each once');
    t.equal(new Set(listed.map((e) => e.key)).size, COUNT + 2, 'no duplicates');
    t.same(listed.find((e) => e.key === 'client-1234')?.value, { i: 1234 });
    t.same(listed.find((e) => e.key === 'star*[key]?')?.value, { special: true }, 'a key with glob characters');
    t.same(listed.find((e) => e.key === 'with:colon')?.value, { colon: true }, 'a key with a colon');
    t.notOk(listed.some((e) => e.key === 'intruder'), 'the lookalike prefix is not matched');
    t.same(await store.list('consents'), [{ key: 'client-0', value: { other: 'namespace' } }]);
  });

  t.test('redis: two replicas race 50 rotations of one session → exactly one rotated, 49 grace', async (t) => {
    const keyPrefix = prefix();
    const replicaA = await open(keyPrefix);
    const replicaB = await open(keyPrefix);
    t.teardown(async () => { await replicaA.close(); await replicaB.close(); });
    const now = Date.now();
    await replicaA.put('sessions', 'race', sessionRecord('race', now, { generation: 3 }));
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) =>
      (i % 2 ? replicaA : replicaB).rotateRefresh({ sid: 'race', presentedGeneration: 3, now, graceMs: 60_000, idleTtlMs: 3_600_000 })));
    t.equal(results.filter((r) => r.status === 'rotated').length, 1, 'one rotated');
    t.equal(results.filter((r) => r.status === 'grace').length, 49, '49 grace');
    t.same([...new Set(results.map((r) => (r as { session: SessionRecord }).session.generation))], [4], 'one successor generation');
    t.equal((await replicaB.get<SessionRecord>('sessions', 'race'))?.generation, 4);
    // A replay of generation 3 after the window, on the other replica, revokes the family for both.
    const late = await replicaA.rotateRefresh({ sid: 'race', presentedGeneration: 3, now: now + 60_001, graceMs: 60_000, idleTtlMs: 3_600_000 });
    t.equal(late.status, 'reuse');
    t.equal(await replicaB.get('sessions', 'race'), undefined, 'revoked everywhere');
  });

  t.test('redis: the rotation script keeps the record exact (empty arrays, member order, large numbers, extra fields)', async (t) => {
    const store = await open(prefix());
    t.teardown(() => store.close());
    const now = Date.now();
    const record = { ...sessionRecord('exact', now, { groups: [], subject: 'ü "quoted" \\ {x:1} "generation":99' }), extra: { nested: [], deep: { generation: 42 } }, ratio: 0.1 };
    await store.put('sessions', 'exact', record);
    const rotated = await store.rotateRefresh({ sid: 'exact', presentedGeneration: 1, now, graceMs: 1000, idleTtlMs: 3_600_000 });
    const expected = { ...record, generation: 2, rotatedAt: now, lastUsedAt: now, idleExpiresAt: now + 3_600_000 };
    t.same(rotated, { status: 'rotated', session: expected });
    const stored = await store.get<typeof record>('sessions', 'exact');
    t.same(stored, expected);
    t.same(Object.keys(stored!), Object.keys(record), 'member order kept');
    t.ok(Array.isArray(stored!.groups) && Array.isArray(stored!.extra.nested), 'empty arrays stay arrays');
    t.equal(stored!.extra.deep.generation, 42, 'nested members of the same name are untouched');
    const grace = await store.rotateRefresh({ sid: 'exact', presentedGeneration: 1, now: now + 500, graceMs: 1000, idleTtlMs: 3_600_000 });
    t.same(grace, { status: 'grace', session: { ...expected, lastUsedAt: now + 500 } });

    // Fields the record lacks are added.
    const { rotatedAt: _r, lastUsedAt: _l, ...partial } = sessionRecord('partial', now);
    await store.put('sessions', 'partial', partial);
    const added = await store.rotateRefresh({ sid: 'partial', presentedGeneration: 1, now, graceMs: 1000, idleTtlMs: 1000 });
    t.match(added, { status: 'rotated', session: { generation: 2, rotatedAt: now, lastUsedAt: now, idleExpiresAt: now + 1000 } });
  });

  t.test('redis: a rotated family expires as a key at its idle end', async (t) => {
    const store = await open(prefix());
    t.teardown(() => store.close());
    const now = Date.now();
    await store.put('sessions', 'idle', sessionRecord('idle', now));
    await store.rotateRefresh({ sid: 'idle', presentedGeneration: 1, now, graceMs: 1000, idleTtlMs: 800 });
    t.ok(await store.get('sessions', 'idle'), 'there right after');
    await new Promise((r) => setTimeout(r, 1_000));
    t.equal(await store.get('sessions', 'idle'), undefined, 'gone after idleExpiresAt (PXAT)');
    t.same(await store.list('sessions'), []);
  });

  t.test('redis: bad arguments are programming errors, not outages', async (t) => {
    const store = await open(prefix());
    t.teardown(() => store.close());
    await t.rejects(store.put('codes', 'c', { v: 1 }, 0), RangeError);
    await t.rejects(store.put('codes', 'c', [] as never), TypeError);
    await t.rejects(store.get('nope' as never, 'c'), TypeError);
    await store.close();
    t.equal(await store.healthy(), false, 'unhealthy once closed');
    await t.rejects(store.get('codes', 'c'), /closed/);
  });

  t.test('redis: openStore opens it; bad URLs are configuration errors', async (t) => {
    const store = await openStore({ type: 'redis', configured: true, url: redis.url, keyPrefix: prefix() }, { logger: silentLogger });
    t.teardown(() => store.close());
    t.equal(store.kind, 'redis');
    t.equal(await store.healthy(), true);
    await t.rejects(openStore({ type: 'redis', configured: true, keyPrefix: 'x:' }, { logger: silentLogger }), { name: 'UserError', message: /needs a url/ });
    await t.rejects(RedisStore.open('http://127.0.0.1:1', { keyPrefix: 'x:', logger: silentLogger }), { name: 'UserError', message: /redis:\/\//i });
    // A refused password is a configuration error (Redis with requirepass for a moment).
    const admin = new Redis(redis.url);
    await admin.config('SET', 'requirepass', 'right-password');
    t.teardown(async () => {
      await admin.config('SET', 'requirepass', '');
      await admin.quit();
    });
    const refused = await RedisStore.open(`redis://:wrong-password@127.0.0.1:${redis.port}`, { keyPrefix: 'x:', logger: silentLogger }).then(
      async (store) => { await store.close(); return undefined; },
      (error: unknown) => error as Error,
    );
    t.match(refused, { name: 'UserError', message: /refused the connection: WRONGPASS/ });
    t.notMatch(refused?.message ?? '', /wrong-password/, 'the password is not in the message');
  });
});

t.test('redis: an outage fails every call fast with StoreUnavailableError; the client reconnects by itself', async (t) => {
  const server = await startRedis(t, { persistent: true });
  if (!server) return;
  const lines: Array<{ level: string; msg: string }> = [];
  const logger = createLogger({ level: 'debug', destination: new Writable({ write(chunk, _e, done) { lines.push(JSON.parse(String(chunk))); done(); } }) });
  const store: StateStore = await RedisStore.open(server.url, { keyPrefix: 'outage:', logger });
  t.teardown(() => store.close());
  const now = Date.now();
  await store.put('clients', 'before', { acknowledged: true });
  await store.put('sessions', 'fam', sessionRecord('fam', now));
  t.equal(await store.healthy(), true);

  await server.stop({ hard: true });
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['get', () => store.get('clients', 'before')],
    ['put', () => store.put('clients', 'during', { v: 1 })],
    ['takeOnce', () => store.takeOnce('codes', 'c')],
    ['delete', () => store.delete('clients', 'before')],
    ['list', () => store.list('clients')],
    ['increment', () => store.increment('ratelimit', 'r', 60)],
    ['rotateRefresh', () => store.rotateRefresh({ sid: 'fam', presentedGeneration: 1, now, graceMs: 1000, idleTtlMs: 60_000 })],
  ];
  // Twice: right after the kill (connection being torn down / reconnecting) and a second later.
  for (const round of [1, 2]) {
    for (const [name, call] of calls) {
      const started = Date.now();
      const error = await call().then(() => undefined, (e: unknown) => e);
      const took = Date.now() - started;
      t.type(error, StoreUnavailableError, `round ${round}: ${name} rejects with StoreUnavailableError`);
      t.ok(took <= 1_200, `round ${round}: ${name} fails fast (${took} ms)`);
    }
    const started = Date.now();
    t.equal(await store.healthy(), false, `round ${round}: unhealthy`);
    t.ok(Date.now() - started <= 1_000, `round ${round}: healthy() answers quickly (${Date.now() - started} ms)`);
    if (round === 1) await new Promise((r) => setTimeout(r, 1_000));
  }

  await server.restart();
  const restarted = Date.now();
  while (!(await store.healthy())) {
    if (Date.now() - restarted > 5_000) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const reconnectMs = Date.now() - restarted;
  t.ok(reconnectMs <= 3_000, `healthy again ${reconnectMs} ms after redis-server is back (backoff capped at 2 s)`);
  t.comment(`reconnected ${reconnectMs} ms after the restart`);
  t.same(await store.get('clients', 'before'), { acknowledged: true }, 'an acknowledged write survived (appendfsync always)');
  t.equal(await store.get('clients', 'during'), undefined, 'the refused write did not happen');
  t.equal((await store.rotateRefresh({ sid: 'fam', presentedGeneration: 1, now, graceMs: 1000, idleTtlMs: 60_000 })).status, 'rotated', 'the refused rotation did not happen behind our back');

  const transitions = lines.filter((l) => /redis (unreachable|reachable again)/.test(l.msg)).map((l) => `${l.level}:${l.msg.split(';')[0]}`);
  t.same(transitions, ['warn:state store: redis unreachable', 'info:state store: redis reachable again'], 'each transition logged once, not per command or retry');
});
