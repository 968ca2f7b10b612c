import t from 'tap';
import * as fsPromises from 'node:fs/promises';
import { copyFileSync, mkdirSync } from 'node:fs';
import { appendFile, copyFile, readdir, readFile, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import path from 'node:path';
import { FileStore } from '../../src/store/file.js';
import { UserError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import type { Namespace, SessionRecord } from '../../src/store/types.js';
import { sessionRecord } from './store.suite.js';

/**
 * The file store's journal (src/store/README.md, "The file store"): recovery after a crash (a store
 * reopened without `close`), torn and corrupt lines, compaction, and replaying a journal over a
 * snapshot that already holds it. Real files in a temp dir.
 */

const HOUR = 3_600_000;
const PERSISTENT: readonly Namespace[] = ['clients', 'consents', 'sessions'];

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'debug', destination: new Writable({ write(chunk, _e, done) { lines.push(JSON.parse(String(chunk))); done(); } }) });
  return { logger, lines };
}

/** Every persistent entry with its expiry, as the store would write it: the in-memory state to compare. */
function state(store: FileStore): unknown {
  return JSON.parse((store as unknown as { serialize(): string }).serialize());
}

async function everything(store: FileStore) {
  const out: Record<string, Array<{ key: string; value: object }>> = {};
  for (const ns of PERSISTENT) out[ns] = (await store.list(ns)).sort((a, b) => a.key.localeCompare(b.key));
  return out;
}

const journalLines = async (file: string) => (await readFile(file + '.journal', 'utf8')).split('\n').filter((line) => line !== '');
const bytesOf = async (file: string) => readFile(file).catch(() => undefined);

/** Puts, replacements, TTLs, deletes, takeOnce and every kind of rotation: the journal's whole repertoire. */
async function mutate(store: FileStore): Promise<void> {
  const now = Date.now();
  await store.put('clients', 'c1', { client_name: 'one' });
  await store.put('clients', 'c2', { client_name: 'two' }, 3600);
  await store.put('clients', 'c3', { client_name: 'three' });
  await store.put('clients', '__proto__', { tricky: true });
  await store.put('consents', 'alice c1', { scopes: ['mcp'] });
  await store.put('consents', 'bob c1', { scopes: ['mcp'] });
  await store.put('sessions', 'rot', sessionRecord('rot', now), 3600);
  await store.put('sessions', 'grace', sessionRecord('grace', now, { generation: 2, rotatedAt: now - 1_000 }), 3600);
  await store.put('sessions', 'reuse', sessionRecord('reuse', now, { generation: 5 }), 3600);
  await store.put('sessions', 'expired', sessionRecord('expired', now, { idleExpiresAt: now - 1 }), 3600);
  await store.put('codes', 'code', { ephemeral: true });
  // Concurrent: one flush carries several of them.
  await Promise.all([
    store.put('clients', 'c1', { client_name: 'one, renamed' }),
    store.delete('clients', 'c3'),
    store.takeOnce('consents', 'bob c1'),
    store.rotateRefresh({ sid: 'rot', presentedGeneration: 1, now, graceMs: 60_000, idleTtlMs: HOUR }),
  ]);
  t.equal((await store.rotateRefresh({ sid: 'rot', presentedGeneration: 2, now: now + 1, graceMs: 60_000, idleTtlMs: 2 * HOUR })).status, 'rotated');
  t.equal((await store.rotateRefresh({ sid: 'grace', presentedGeneration: 1, now: now + 2, graceMs: 60_000, idleTtlMs: HOUR })).status, 'grace');
  t.equal((await store.rotateRefresh({ sid: 'reuse', presentedGeneration: 3, now, graceMs: 60_000, idleTtlMs: HOUR })).status, 'reuse');
  t.equal((await store.rotateRefresh({ sid: 'expired', presentedGeneration: 1, now, graceMs: 60_000, idleTtlMs: HOUR })).status, 'invalid');
}

t.test('crash: every acknowledged change survives a reopen without close', async (t) => {
  const file = path.join(t.testdir({}), 'auth_server.json');
  const a = await FileStore.open(file);
  await mutate(a);
  const expected = state(a);
  const listed = await everything(a);
  t.ok((await journalLines(file)).length > 0, 'the changes are in the journal');
  t.notOk(JSON.parse(await readFile(file, 'utf8')).sessions.rot, 'and not in the snapshot');

  // No close: as if the process had been killed.
  const { logger, lines } = capturingLogger();
  const b = await FileStore.open(file, { logger });
  t.teardown(() => b.close());
  t.same(state(b), expected, 'the reopened state is identical, expiries included');
  t.same(await everything(b), listed);
  t.same(await b.get('clients', 'c1'), { client_name: 'one, renamed' });
  t.equal(await b.get('clients', 'c3'), undefined, 'deleted');
  t.equal(await b.get('consents', 'bob c1'), undefined, 'taken');
  t.same(await b.get('clients', '__proto__'), { tricky: true }, 'a "__proto__" key is data');
  t.equal((await b.get<SessionRecord>('sessions', 'rot'))!.generation, 3, 'both rotations');
  t.equal(await b.get('sessions', 'reuse'), undefined, 'a reused family stays revoked');
  t.equal(await b.get('sessions', 'expired'), undefined, 'an invalid (expired) family stays deleted');
  t.equal(await b.get('codes', 'code'), undefined, 'ephemeral namespaces are not journaled');
  t.match(lines, [{ msg: 'state store journal replayed' }]);

  t.equal((await stat(file + '.journal')).size, 0, 'open compacted the replayed journal');
  const doc = JSON.parse(await readFile(file, 'utf8'));
  t.same(doc, expected, 'into a fresh snapshot');
  t.equal(await readFile(file, 'utf8'), (b as unknown as { serialize(): string }).serialize());
  await a.close(); // only to release its handle and timer
});

t.test('the journal format: one line per changed key, its whole current state', async (t) => {
  const file = path.join(t.testdir({}), 'auth_server.json');
  const store = await FileStore.open(file);
  t.teardown(() => store.close());
  await store.put('clients', 'first', { n: 0 }); // creates the snapshot
  const before = Date.now();
  await Promise.all([
    store.put('clients', 'a', { n: 1 }),
    store.put('clients', 'a', { n: 2 }),
    store.put('sessions', 's', { generation: 1 }, 60),
    store.delete('clients', 'first'),
  ]);
  const lines = (await journalLines(file)).map((line) => JSON.parse(line));
  t.same(lines.slice(0, 2), [{ ns: 'clients', key: 'a', value: { n: 2 } }, { ns: 'clients', key: 'first', deleted: true }], 'the latest state once per key');
  t.match(lines[2], { ns: 'sessions', key: 's', value: { generation: 1 }, expiresAt: Number });
  t.ok(lines[2].expiresAt >= before + 60_000 && lines[2].expiresAt <= Date.now() + 60_000, 'expiresAt in ms since epoch');
  t.equal(lines.length, 3);
  t.match(await readFile(file + '.journal', 'utf8'), /\n$/, 'every line ends with a newline');
});

t.test('group commit: 200 concurrent puts are one flush of 200 lines', async (t) => {
  const file = path.join(t.testdir({}), 'auth_server.json');
  const store = await FileStore.open(file);
  t.teardown(() => store.close());
  await store.put('clients', 'first', { n: 0 });
  const before = store.flushCount;
  await Promise.all(Array.from({ length: 200 }, (_, i) => store.put('clients', `c${i}`, { i })));
  t.equal(store.flushCount - before, 1, 'one flush');
  t.equal((await journalLines(file)).length, 200, '200 lines');
  await Promise.all(Array.from({ length: 100 }, (_, i) => store.put('consents', 'same', { i })));
  t.equal((await journalLines(file)).length, 201, '100 writes of one key: one line');
});

t.test('a torn last line is ignored with a warning; the lines before it are applied', async (t) => {
  const dir = t.testdir({});
  for (const [name, tail] of [['unterminated', '{"ns":"clients","key":"torn","val'], ['unterminated-but-parses', '{"ns":"clients","key":"torn","value":{}}'], ['unparsable', '{"ns":"clients","ke\n'], ['zeros', '\0\0\0\0\0\0']] as const) {
    const file = path.join(dir, `${name}.json`);
    // A snapshot, three acknowledged lines, then a write torn by a crash.
    await writeFile(file + '.journal', [
      JSON.stringify({ ns: 'clients', key: 'k1', value: { n: 1 } }),
      JSON.stringify({ ns: 'clients', key: 'k2', value: { n: 2 } }),
      JSON.stringify({ ns: 'clients', key: 'snap', deleted: true }),
      '',
    ].join('\n'), { mode: 0o600 });
    await writeFile(file, JSON.stringify({ version: 1, clients: { snap: { value: { n: 0 } } } }), { mode: 0o600 });
    await appendFile(file + '.journal', tail);

    const { logger, lines } = capturingLogger();
    const b = await FileStore.open(file, { logger });
    t.same((await b.list('clients')).sort((x, y) => x.key.localeCompare(y.key)), [{ key: 'k1', value: { n: 1 } }, { key: 'k2', value: { n: 2 } }], `${name}: the complete lines applied, the torn one not`);
    t.match(lines.filter((l) => l.level === 'warn'), [{ msg: /ignored the last line of the state store journal/, line: 4 }], `${name}: one warning naming the line`);
    t.equal((await stat(file + '.journal')).size, 0, `${name}: compacted at open`);
    await b.put('clients', 'after', { n: 3 });
    await b.close();
    const c = await FileStore.open(file);
    t.same((await c.list('clients')).map((e) => e.key).sort(), ['after', 'k1', 'k2'], `${name}: and writable afterwards`);
    await c.close();
  }
});

t.test('a corrupt line that is not the last one refuses the open and leaves both files untouched', async (t) => {
  const good = (key: string) => JSON.stringify({ ns: 'clients', key, value: { n: 1 } });
  const cases: Record<string, { lines: string[]; message: RegExp }> = {
    'not-json': { lines: [good('a'), '{"ns":"clients"', good('b')], message: /line that is not valid JSON at line 2 \(.+\)/ },
    'empty-line': { lines: [good('a'), '', good('b')], message: /not valid JSON at line 2/ },
    'ephemeral-ns': { lines: [good('a'), '{"ns":"codes","key":"k","value":{}}', good('b')], message: /wrong shape at line 2: "ns" must be one of clients, consents, sessions \(got "codes"\)/ },
    'no-key': { lines: ['{"ns":"clients","value":{}}', good('b')], message: /wrong shape at line 1: "key" must be a string/ },
    'array-value': { lines: [good('a'), good('b'), '{"ns":"clients","key":"k","value":[]}', good('c')], message: /wrong shape at line 3: must be/ },
    'bad-expiry': { lines: ['{"ns":"sessions","key":"k","value":{},"expiresAt":"soon"}', good('b')], message: /wrong shape at line 1: "expiresAt" must be a number/ },
    'unknown-field': { lines: ['{"ns":"sessions","key":"k","value":{},"extra":1}', good('b')], message: /wrong shape at line 1/ },
    'bad-deletion': { lines: ['{"ns":"sessions","key":"k","deleted":false}', good('b')], message: /wrong shape at line 1/ },
    'deletion-with-value': { lines: ['{"ns":"sessions","key":"k","deleted":true,"value":{}}', good('b')], message: /wrong shape at line 1/ },
    'not-an-object': { lines: [good('a'), '[1,2]', good('b')], message: /wrong shape at line 2/ },
    // A torn write never parses: a last line that parses with a wrong shape is corruption too.
    'wrong-shape-last': { lines: [good('a'), '{"ns":"codes","key":"k","value":{}}'], message: /wrong shape at line 2/ },
  };
  const snapshot = JSON.stringify({ version: 1, clients: { s: { value: { n: 0 } } } });
  const files: Record<string, string> = {};
  for (const [name, c] of Object.entries(cases)) {
    files[`${name}.json`] = snapshot;
    files[`${name}.json.journal`] = c.lines.join('\n') + '\n';
  }
  const dir = t.testdir(files);
  for (const [name, c] of Object.entries(cases)) {
    const file = path.join(dir, `${name}.json`);
    const error = await FileStore.open(file).then(async (store) => { await store.close(); return undefined; }, (e: unknown) => e);
    t.type(error, UserError, `${name}: a UserError`);
    t.match((error as Error).message, c.message, `${name}: says what is wrong and where`);
    t.ok((error as Error).message.startsWith(`${file}.journal: the state store journal `), `${name}: names the journal`);
    t.match((error as Error).message, /left untouched/, `${name}: says the files were left untouched`);
    t.equal(await readFile(file, 'utf8'), snapshot, `${name}: the snapshot is unchanged`);
    t.equal(await readFile(file + '.journal', 'utf8'), files[`${name}.json.journal`], `${name}: the journal is unchanged`);
  }
  t.same((await readdir(dir)).filter((n) => n.endsWith('.tmp')), [], 'no temp files');
});

t.test('a snapshot that cannot be written after the replay fails the open, and loses nothing', async (t) => {
  const file = path.join(t.testdir({}), 'auth_server.json');
  const a = await FileStore.open(file);
  await a.put('clients', 'a', { n: 1 });
  await a.put('clients', 'b', { n: 2 });
  const journal = await readFile(file + '.journal');
  const snapshot = await readFile(file);
  const { FileStore: Broken } = await t.mockImport<typeof import('../../src/store/file.js')>('../../src/store/file.js', {
    'node:fs/promises': { ...fsPromises, rename: async () => { throw Object.assign(new Error('EROFS: read-only file system, rename'), { code: 'EROFS' }); } },
  });
  const error = await Broken.open(file).then(async (store) => { await store.close(); return undefined; }, (e: unknown) => e);
  t.type(error, UserError);
  t.match((error as Error).message, `${file}.journal: the state store journal was replayed but could not be compacted into ${file} (EROFS`);
  t.match((error as Error).message, /Nothing was lost/);
  t.same(await bytesOf(file), snapshot, 'the snapshot is unchanged');
  t.same(await bytesOf(file + '.journal'), journal, 'the journal is unchanged');
  const b = await FileStore.open(file);
  t.same(await b.get('clients', 'b'), { n: 2 }, 'the next open replays it');
  await b.close();
  await a.close();
});

t.test('compaction past the threshold: the journal stays small and the state is identical after a crash', async (t) => {
  const file = path.join(t.testdir({}), 'auth_server.json');
  const store = await FileStore.open(file, { journalCompactBytes: 4096 });
  t.teardown(() => store.close());
  const pad = 'x'.repeat(100);
  let maxJournal = 0;
  // Concurrent writers on a few keys (a small state, so the 4096 bytes floor is the threshold):
  // mutations arriving during a compaction are journaled after it.
  await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; i < 60; i++) {
      await store.put('clients', `w${w}`, { i, pad });
      maxJournal = Math.max(maxJournal, (await stat(file + '.journal').catch(() => ({ size: 0 }))).size);
    }
  }));
  const snapshot = JSON.parse(await readFile(file, 'utf8'));
  t.ok(Object.values(snapshot.clients).some((e) => (e as { value: { i: number } }).value.i > 10), 'the snapshot was rewritten by compactions');
  t.ok(maxJournal < 4096 + 8 * 200, `the journal never grew much past the threshold (max ${maxJournal} bytes)`);
  t.comment(`journal at most ${maxJournal} bytes over 480 writes of ~150-byte lines`);

  // The last acknowledged batch may still be compacting: the crash comes once the writer is idle
  // (a second process reading mid-compaction is not a crash; the next test crashes mid-compaction).
  await store.idle();
  const expected = state(store);
  const again = await FileStore.open(file); // without close: a crash
  t.same(state(again), expected, 'identical after the reopen');
  for (let w = 0; w < 8; w++) t.same(await again.get('clients', `w${w}`), { i: 59, pad });
  await again.close();
});

t.test('every compaction leaves a recoverable pair even if the crash comes between the rename and the truncation', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'auth_server.json');
  const store = await FileStore.open(file, { journalCompactBytes: 2048 });
  t.teardown(() => store.close());
  // Capture the disk at the moment each compaction is about to truncate the journal: the new
  // snapshot is in place and the journal still holds everything, this batch's lines included.
  const images: string[] = [];
  const internals = store as unknown as { openJournal(): Promise<FileHandle> };
  const openJournal = internals.openJournal.bind(store);
  const patched = new WeakSet<FileHandle>();
  internals.openJournal = async () => {
    const handle = await openJournal();
    if (patched.has(handle)) return handle;
    patched.add(handle);
    const truncate = handle.truncate.bind(handle);
    handle.truncate = async (length?: number) => {
      const image = path.join(dir, `image-${images.length}`);
      mkdirSync(image);
      copyFileSync(file, path.join(image, 'auth_server.json'));
      copyFileSync(file + '.journal', path.join(image, 'auth_server.json.journal'));
      images.push(image);
      return truncate(length);
    };
    return handle;
  };
  // Writers keep mutating while each flush and compaction runs.
  await Promise.all(Array.from({ length: 6 }, async (_, w) => {
    for (let i = 0; i < 50; i++) {
      if (i % 7 === 3) await store.delete('clients', `w${w}`);
      else await store.put('clients', `w${w}`, { i, pad: 'p'.repeat(60) });
      await store.put('consents', `w${w}-${i % 4}`, { i });
    }
  }));
  t.ok(images.length >= 3, `${images.length} compactions captured`);
  for (const image of images) {
    const snapshot = JSON.parse(await readFile(path.join(image, 'auth_server.json'), 'utf8'));
    t.ok((await stat(path.join(image, 'auth_server.json.journal'))).size > 0, `${path.basename(image)}: the journal was not empty`);
    const reopened = await FileStore.open(path.join(image, 'auth_server.json'));
    t.same(state(reopened), snapshot, `${path.basename(image)}: replaying the journal over the new snapshot gives that snapshot`);
    await reopened.close();
  }
});

t.test('compaction threshold: a big snapshot waits for twice its size of journal', async (t) => {
  const file = path.join(t.testdir({}), 'auth_server.json');
  let store = await FileStore.open(file, { journalCompactBytes: 1024 });
  await Promise.all(Array.from({ length: 100 }, (_, i) => store.put('clients', `c${i}`, { pad: 'y'.repeat(100) })));
  await store.close();
  const snapshotSize = (await stat(file)).size;
  t.ok(snapshotSize > 10_000, `snapshot ${snapshotSize} bytes`);
  store = await FileStore.open(file, { journalCompactBytes: 1024 });
  t.teardown(() => store.close());
  let journal = 0;
  let i = 0;
  while (journal < snapshotSize * 2 - 200) {
    await store.put('consents', 'k', { i: i++, pad: 'z'.repeat(80) });
    journal = (await stat(file + '.journal')).size;
    t.ok(journal > 0, `line ${i}: journaled, not compacted`);
    if (journal === 0) break;
  }
  for (let n = 0; n < 3; n++) await store.put('consents', 'k', { i: i++, pad: 'z'.repeat(80) });
  t.ok((await stat(file + '.journal')).size < 500, 'compacted once the journal reached twice the snapshot');
});

t.test('close leaves an empty journal and a complete snapshot', async (t) => {
  const file = path.join(t.testdir({}), 'auth_server.json');
  const store = await FileStore.open(file);
  await mutate(store);
  const expected = state(store);
  t.ok((await stat(file + '.journal')).size > 0);
  await store.close();
  t.equal((await stat(file + '.journal')).size, 0, 'empty journal');
  t.same(JSON.parse(await readFile(file, 'utf8')), expected, 'the snapshot alone holds everything');
  // The snapshot alone (as a backup taken after a clean shutdown would be) is the whole state.
  const copy = path.join(path.dirname(file), 'copy', 'auth_server.json');
  await fsPromises.mkdir(path.dirname(copy));
  await copyFile(file, copy);
  const restored = await FileStore.open(copy);
  t.same(state(restored), expected);
  await restored.close();
});

t.test('a journal replayed over a snapshot that already holds it (crash between rename and truncation)', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'auth_server.json');
  const store = await FileStore.open(file);
  await mutate(store);
  // Several versions of one key, then its deletion, then its return: the order of lines matters.
  await store.put('clients', 'cycle', { v: 1 });
  await store.put('clients', 'cycle', { v: 2 });
  await store.delete('clients', 'cycle');
  await store.put('clients', 'gone', { v: 1 });
  await store.delete('clients', 'gone');
  await store.put('clients', 'cycle', { v: 3 });
  const journal = await readFile(file + '.journal');
  const expected = state(store);
  await store.close(); // compacts: the snapshot now holds everything in the journal
  t.same(JSON.parse(await readFile(file, 'utf8')), expected);
  // Put the old journal back, as if the crash came after the snapshot's rename but before the truncation.
  await writeFile(file + '.journal', journal);
  const again = await FileStore.open(file);
  t.same(state(again), expected, 'the same state');
  t.same(await again.get('clients', 'cycle'), { v: 3 });
  t.equal(await again.get('clients', 'gone'), undefined);
  t.equal((await stat(file + '.journal')).size, 0);
  await again.close();
});

t.test('a journal without a snapshot (the snapshot lost or not yet written) is replayed onto an empty store', async (t) => {
  const dir = t.testdir({
    'auth_server.json.journal': [
      JSON.stringify({ ns: 'clients', key: 'a', value: { n: 1 } }),
      JSON.stringify({ ns: 'sessions', key: 'old', value: { n: 1 }, expiresAt: Date.now() - 1 }),
      JSON.stringify({ ns: 'consents', key: 'x', deleted: true }),
      '',
    ].join('\n'),
  });
  const file = path.join(dir, 'auth_server.json');
  const store = await FileStore.open(file);
  t.same(await everything(store), { clients: [{ key: 'a', value: { n: 1 } }], consents: [], sessions: [] }, 'an expired value is not loaded');
  t.same(JSON.parse(await readFile(file, 'utf8')).clients, { a: { value: { n: 1 } } }, 'open wrote the snapshot');
  await store.close();
});

t.test('read-only open: the journal is replayed in memory, nothing is written, changes are refused', async (t) => {
  const file = path.join(t.testdir({}), 'auth_server.json');
  const writer = await FileStore.open(file);
  await mutate(writer);
  const expected = await everything(writer);
  const snapshotBefore = await bytesOf(file);
  const journalBefore = await bytesOf(file + '.journal');
  t.ok(journalBefore && journalBefore.length > 0, 'the running writer has a journal');

  const reader = await FileStore.open(file, { readOnly: true });
  t.same(await everything(reader), expected, 'the reader sees every acknowledged change');
  await t.rejects(reader.put('clients', 'x', { a: 1 }), /read-only/);
  await t.rejects(reader.delete('clients', 'c1'), /read-only/);
  await t.rejects(reader.rotateRefresh({ sid: 'rot', presentedGeneration: 0, now: Date.now(), graceMs: 0, idleTtlMs: HOUR }), /read-only/);
  await reader.close();
  t.same(await bytesOf(file), snapshotBefore, 'the snapshot is untouched');
  t.same(await bytesOf(file + '.journal'), journalBefore, 'the journal is untouched');

  // The writer goes on appending to the same journal: nothing it wrote was lost.
  await writer.put('clients', 'after', { client_name: 'after the read' });
  const reopened = await FileStore.open(file);
  t.same((await reopened.get('clients', 'after')) as object, { client_name: 'after the read' });
  await reopened.close();
  await writer.close();
});

t.test('read-only open during a compaction: the old snapshot is never paired with the emptied journal', async (t) => {
  const file = path.join(t.testdir({}), 'auth_server.json');
  const writer = await FileStore.open(file);
  await mutate(writer);
  const expected = await everything(writer);
  t.ok((await journalLines(file)).length > 0, 'the running writer has a journal');

  // The writer compacts (close: new snapshot renamed into place, then the journal emptied) right
  // after the reader has read the snapshot and before it reads the journal.
  let compactedBetweenReads = false;
  const { FileStore: Raced } = await t.mockImport<typeof import('../../src/store/file.js')>('../../src/store/file.js', {
    'node:fs/promises': {
      ...fsPromises,
      readFile: (async (...args: Parameters<typeof fsPromises.readFile>) => {
        if (args[0] === file + '.journal' && !compactedBetweenReads) {
          compactedBetweenReads = true;
          await writer.close();
        }
        return fsPromises.readFile(...args);
      }) as typeof fsPromises.readFile,
    },
  });
  const reader = await Raced.open(file, { readOnly: true });
  t.ok(compactedBetweenReads, 'the compaction came between the two reads');
  t.same(await journalLines(file), [], 'the compaction emptied the journal');
  t.same(await everything(reader), expected, 'the reader sees every acknowledged change');
  await reader.close();
});
