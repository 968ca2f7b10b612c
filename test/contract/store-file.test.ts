import t from 'tap';
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { FileStore } from '../../src/store/file.js';
import { UserError } from '../../src/errors.js';
import { openStore } from '../../src/store/index.js';
import { silentLogger } from '../../src/log.js';
import { storeContract } from './store.suite.js';

const root = t.testdir({});
let counter = 0;

storeContract(t, 'file', async () => {
  // A nested directory that does not exist yet: open creates it.
  const file = path.join(root, `contract-${counter++}`, 'state', 'auth_server.json');
  const store = await FileStore.open(file);
  return { store, reopen: () => FileStore.open(file) };
});

const tempFiles = async (dir: string) => (await readdir(dir)).filter((name) => name.endsWith('.tmp'));

t.test('file: the file is created on first write, mode 0600, in a 0700 directory, in the documented format', async (t) => {
  const dir = path.join(t.testdir({}), 'new-dir');
  const file = path.join(dir, 'auth_server.json');
  const store = await FileStore.open(file);
  t.teardown(() => store.close());
  await t.rejects(stat(file), { code: 'ENOENT' }, 'opening a missing file does not create it');
  await store.put('codes', 'c', { v: 1 });
  await t.rejects(stat(file), { code: 'ENOENT' }, 'ephemeral writes never touch the file');
  await store.put('clients', 'client-a', { client_name: 'A' });
  t.same(JSON.parse(await readFile(file, 'utf8')).clients, { 'client-a': { value: { client_name: 'A' } } }, 'the first write creates the snapshot');
  await t.rejects(stat(file + '.journal'), { code: 'ENOENT' }, 'the first write needs no journal');
  await store.put('sessions', 's', { generation: 1 }, 3600);
  t.ok((await stat(file + '.journal')).size > 0, 'later writes go to the journal');
  if (process.platform !== 'win32') {
    t.equal((await stat(file)).mode & 0o777, 0o600, 'file mode 0600');
    t.equal((await stat(file + '.journal')).mode & 0o777, 0o600, 'journal mode 0600');
    t.equal((await stat(dir)).mode & 0o777, 0o700, 'created directory mode 0700');
  }
  await store.close();
  t.equal((await stat(file + '.journal')).size, 0, 'close compacts the journal into the snapshot');
  const doc = JSON.parse(await readFile(file, 'utf8'));
  t.match(doc, { version: 1, clients: { 'client-a': { value: { client_name: 'A' } } }, consents: {}, sessions: { s: { value: { generation: 1 }, expiresAt: Number } } });
  t.equal(doc.clients['client-a'].expiresAt, undefined, 'no expiresAt without TTL');
  t.notOk('codes' in doc, 'ephemeral namespaces are not in the file');
  t.same(await tempFiles(dir), [], 'no temp files left behind');
});

t.test('file: an existing wide-mode file is rewritten with mode 0600', { skip: process.platform === 'win32' }, async (t) => {
  const dir = t.testdir({ 'auth_server.json': JSON.stringify({ version: 1, clients: { a: { value: { n: 1 } } } }) });
  const file = path.join(dir, 'auth_server.json');
  await chmod(file, 0o644);
  const store = await FileStore.open(file);
  t.teardown(() => store.close());
  t.same(await store.get('clients', 'a'), { n: 1 }, 'loaded');
  await store.put('clients', 'b', { n: 2 });
  t.equal((await stat(file)).mode & 0o777, 0o600);
});

t.test('file: a corrupt, wrong-version, wrong-shape or unreadable file stops the open and is left untouched', async (t) => {
  const cases: Record<string, { content: string; message: RegExp }> = {
    'bad-json': { content: '{"version": 1, "clients": {', message: /is not valid JSON \(.+\)/ },
    'empty': { content: '', message: /is not valid JSON/ },
    'wrong-version': { content: '{"version": 2, "clients": {}}', message: /has version 2; this Gatehouse reads version 1/ },
    'no-version': { content: '{"clients": {}}', message: /has version undefined/ },
    'array': { content: '[]', message: /is not a JSON object/ },
    'unknown-key': { content: '{"version": 1, "codes": {}}', message: /unknown key at \/codes/ },
    'bad-section': { content: '{"version": 1, "clients": []}', message: /wrong shape at \/clients: must be an object/ },
    'bad-entry': { content: '{"version": 1, "sessions": {"a/b": {"v": 1}}}', message: /wrong shape at \/sessions\/a~1b/ },
    'bad-expiry': { content: '{"version": 1, "consents": {"k": {"value": {}, "expiresAt": "soon"}}}', message: /\/consents\/k\/expiresAt/ },
  };
  const dir = t.testdir(Object.fromEntries(Object.entries(cases).map(([name, c]) => [`${name}.json`, c.content])));
  for (const [name, c] of Object.entries(cases)) {
    const file = path.join(dir, `${name}.json`);
    const error = await FileStore.open(file).then(() => undefined, (e: unknown) => e);
    t.type(error, UserError, `${name}: a UserError`);
    t.match((error as Error).message, c.message, `${name}: says what is wrong`);
    t.ok((error as Error).message.startsWith(file + ':'), `${name}: names the path`);
    t.match((error as Error).message, /left untouched/, `${name}: says the file was left untouched`);
    t.equal(await readFile(file, 'utf8'), c.content, `${name}: the file is unchanged`);
  }

  const directory = path.join(dir, 'a-directory.json');
  await mkdir(directory);
  const isDir = await FileStore.open(directory).then(() => undefined, (e: unknown) => e);
  t.type(isDir, UserError, 'a directory: a UserError');
  t.match((isDir as Error).message, /cannot be read \(.*EISDIR.*\).*left untouched/, 'a directory: says it cannot be read');

  // Permission bits do not stop root, so this case only runs for other users.
  if (process.platform !== 'win32' && process.getuid?.() !== 0) {
    const file = path.join(dir, 'unreadable.json');
    await writeFile(file, '{"version":1}', { mode: 0o000 });
    const error = await FileStore.open(file).then(() => undefined, (e: unknown) => e);
    t.type(error, UserError, 'unreadable: a UserError');
    t.match((error as Error).message, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the state store file cannot be read \\(.*EACCES`), 'unreadable: path and reason');
    await chmod(file, 0o600);
    t.equal(await readFile(file, 'utf8'), '{"version":1}', 'unreadable: the file is unchanged');
  }
});

t.test('file: expired entries are dropped on load and from the next write', async (t) => {
  const past = Date.now() - 1_000;
  const dir = t.testdir({
    'auth_server.json': JSON.stringify({ version: 1, clients: { old: { value: { n: 1 }, expiresAt: past }, live: { value: { n: 2 } } } }),
  });
  const file = path.join(dir, 'auth_server.json');
  const store = await FileStore.open(file);
  t.teardown(() => store.close());
  t.same(await store.list('clients'), [{ key: 'live', value: { n: 2 } }]);
  await store.put('consents', 'x', { y: 1 });
  await store.close();
  const doc = JSON.parse(await readFile(file, 'utf8'));
  t.same(Object.keys(doc.clients), ['live'], 'the expired entry is not written back');
  t.same(doc.consents, { x: { value: { y: 1 } } });
});

t.test('file: group commit: 200 concurrent puts share a few flushes and all survive a reopen', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'auth_server.json');
  const store = await FileStore.open(file);
  await Promise.all(Array.from({ length: 200 }, (_, i) => store.put('clients', `c${i}`, { i })));
  const burst = store.flushCount;
  t.ok(burst >= 1 && burst < 20, `200 concurrent puts → ${burst} flushes`);

  // Writes arriving while a flush runs all join the next one: staggered over event-loop turns.
  const before = store.flushCount;
  const staggered: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) {
    staggered.push(store.put('consents', `k${i}`, { i }));
    if (i % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(staggered);
  const spread = store.flushCount - before;
  t.ok(spread >= 1 && spread < 20, `200 puts over 10 event-loop turns → ${spread} flushes`);
  t.comment(`flushes: ${burst} for a burst of 200, ${spread} for 200 staggered`);
  await store.close();

  const again = await FileStore.open(file);
  t.teardown(() => again.close());
  t.equal((await again.list('clients')).length, 200, 'all 200 clients present after reopen');
  t.equal((await again.list('consents')).length, 200, 'all 200 consents present after reopen');
  t.same(await tempFiles(dir), [], 'no temp files left behind');
});

t.test('file: a failed flush rejects its waiters, keeps the state in memory and the next flush retries', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'auth_server.json');
  const journal = file + '.journal';
  const store = await FileStore.open(file);
  t.teardown(() => store.close());
  await store.put('clients', 'a', { n: 1 });
  // A non-empty directory where the snapshot should be: the first write (which creates the snapshot) fails, even for root.
  const first = await FileStore.open(path.join(dir, 'first', 'auth_server.json'));
  await mkdir(path.join(dir, 'first', 'auth_server.json', 'blocker'), { recursive: true });
  await t.rejects(first.put('clients', 'x', { n: 0 }), { message: /could not save the state store/ }, 'a failed snapshot rejects');
  t.equal(await first.healthy(), false);
  await rm(path.join(dir, 'first', 'auth_server.json'), { recursive: true });
  await first.put('clients', 'y', { n: 0 });
  await first.close();
  t.same(Object.keys(JSON.parse(await readFile(path.join(dir, 'first', 'auth_server.json'), 'utf8')).clients).sort(), ['x', 'y'], 'the retry wrote the failed change');

  // A non-empty directory where the journal should be: appending fails, even for root.
  await mkdir(path.join(journal, 'blocker'), { recursive: true });
  const results = await Promise.allSettled([store.put('clients', 'b', { n: 2 }), store.put('clients', 'c', { n: 3 })]);
  t.same(results.map((r) => r.status), ['rejected', 'rejected'], 'every waiter of the failed flush is rejected');
  t.match((results[0] as PromiseRejectedResult).reason.message, `${file}: could not save the state store`);
  t.equal(await store.healthy(), false, 'unhealthy while the disk is behind');
  t.same(await store.get('clients', 'b'), { n: 2 }, 'the in-memory state stays ahead');
  t.same(await tempFiles(dir), [], 'no temp files left behind');
  await rm(journal, { recursive: true });
  await store.put('clients', 'd', { n: 4 });
  t.equal(await store.healthy(), true, 'healthy again');
  const doc = JSON.parse(await readFile(file, 'utf8'));
  t.same(Object.keys(doc.clients).sort(), ['a', 'b', 'c', 'd'], 'the retry compacted: a snapshot of everything');
  t.equal((await stat(journal)).size, 0, 'and an empty journal');

  // The open journal fails under the store (here: its handle closed behind its back, EBADF).
  await store.put('clients', 'e', { n: 5 });
  await (store as unknown as { journal: FileHandle }).journal.close();
  await t.rejects(store.put('clients', 'f', { n: 6 }), { message: /could not save the state store/ });
  t.equal(await store.healthy(), false);
  await store.put('clients', 'g', { n: 7 });
  t.equal(await store.healthy(), true, 'the next flush compacted and reopened the journal');
  await store.put('clients', 'h', { n: 8 });
  t.equal(JSON.parse(await readFile(file, 'utf8')).clients.h, undefined, 'later writes are journaled again');
  const again = await FileStore.open(file);
  t.same((await again.list('clients')).map((e) => e.key).sort(), ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], 'nothing lost (reopened without close)');
  await again.close();
});

t.test('file: stale temp files of a dead process are removed on open, a live one\'s are kept', async (t) => {
  const dir = t.testdir({
    'auth_server.json': '{"version":1}',
    'auth_server.json.999999999.abcdef.tmp': 'partial',
    [`auth_server.json.${process.pid}.abcdef.tmp`]: 'in progress',
    'other.json.999999999.abcdef.tmp': 'not ours',
  });
  const store = await FileStore.open(path.join(dir, 'auth_server.json'));
  t.teardown(() => store.close());
  t.same((await tempFiles(dir)).sort(), [`auth_server.json.${process.pid}.abcdef.tmp`, 'other.json.999999999.abcdef.tmp']);
});

t.test('openStore: file at the configured path', async (t) => {
  const file = path.join(t.testdir({}), 'auth_server.json');
  const store = await openStore({ type: 'file', configured: true, path: file, keyPrefix: 'gatehouse:' }, { logger: silentLogger });
  t.teardown(() => store.close());
  t.equal(store.kind, 'file');
  await store.put('clients', 'a', { n: 1 });
  t.same(JSON.parse(await readFile(file, 'utf8')).clients, { a: { value: { n: 1 } } });
});
