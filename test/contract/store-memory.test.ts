import t from 'tap';
import { Writable } from 'node:stream';
import { MemoryStore } from '../../src/store/memory.js';
import { openStore, parseInlineSeed } from '../../src/store/index.js';
import { UserError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { storeContract } from './store.suite.js';

storeContract(t, 'memory', async () => ({ store: new MemoryStore() }));

t.test('memory: the sweep removes expired entries without a read', async (t) => {
  const store = new MemoryStore({ sweepIntervalMs: 50 });
  t.teardown(() => store.close());
  await store.put('codes', 'c', { v: 1 }, 1);
  await new Promise((resolve) => setTimeout(resolve, 1_150));
  t.same(await store.list('codes'), [], 'swept');
});

t.test('memory: bad arguments are programming errors', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  await t.rejects(store.put('codes', 'c', { v: 1 }, 0), RangeError, 'a TTL must be positive');
  await t.rejects(store.put('codes', 'c', [] as never), TypeError, 'values are objects');
  await t.rejects(store.get('nope' as never, 'c'), TypeError, 'unknown namespace');
  await store.close();
  t.equal(await store.healthy(), false, 'unhealthy once closed');
  await t.rejects(store.get('codes', 'c'), /closed/, 'closed stores refuse work');
});

// openStore and the inline seed (src/store/index.ts) are small enough to test beside the memory store.
t.test('openStore: memory warns once, plainly', async (t) => {
  const lines: string[] = [];
  const logger = createLogger({ destination: new Writable({ write(chunk, _encoding, done) { lines.push(String(chunk)); done(); } }) });
  const store = await openStore({ type: 'memory', configured: true, keyPrefix: 'gatehouse:' }, { logger });
  t.teardown(() => store.close());
  t.equal(store.kind, 'memory');
  const warnings = lines.map((line) => JSON.parse(line)).filter((entry) => entry.level === 'warn');
  t.equal(warnings.length, 1, 'one warning');
  t.match(warnings[0].msg, /registrations and sessions will not survive a restart/);
  // openStore's redis case is tested in store-redis.test.ts (it needs a redis-server).
});

t.test('parseInlineSeed: MCP_AUTH_SERVER_CONFIG', async (t) => {
  t.same(parseInlineSeed(JSON.stringify({
    version: 1,
    clients: [
      { client_id: 'pub', redirect_uris: ['http://127.0.0.1/cb'] },
      { client_id: 'conf', client_name: 'CI', redirect_uris: ['https://ci.example/cb'], client_secret: 's3cret-value', token_endpoint_auth_method: 'client_secret_post' },
    ],
  })), {
    clients: [
      { client_id: 'pub', redirect_uris: ['http://127.0.0.1/cb'] },
      { client_id: 'conf', client_name: 'CI', redirect_uris: ['https://ci.example/cb'], client_secret: 's3cret-value', token_endpoint_auth_method: 'client_secret_post' },
    ],
  });
  t.same(parseInlineSeed('{"version":1}'), { clients: [] }, 'no clients is fine');
  const bad: Array<[unknown, RegExp]> = [
    [{ version: 2, clients: [] }, /^MCP_AUTH_SERVER_CONFIG: \/version must be 1$/],
    [{ version: 1, clients: {} }, /\/clients must be an array/],
    [{ version: 1, extra: 1 }, /\/extra is not a known key/],
    [{ version: 1, clients: ['x'] }, /\/clients\/0 must be an object/],
    [{ version: 1, clients: [{ redirect_uris: ['https://a/cb'] }] }, /\/clients\/0\/client_id must be a non-empty string/],
    [{ version: 1, clients: [{ client_id: 'a', redirect_uris: [] }] }, /^MCP_AUTH_SERVER_CONFIG: \/clients\/0\/redirect_uris must be a non-empty array of strings$/],
    [{ version: 1, clients: [{ client_id: 'a', redirect_uris: ['https://a/cb'] }, { client_id: 'a', redirect_uris: ['https://a/cb'] }] }, /\/clients\/1\/client_id duplicates/],
    [{ version: 1, clients: [{ client_id: 'a', redirect_uris: ['https://a/cb'], token_endpoint_auth_method: 'private_key_jwt' }] }, /token_endpoint_auth_method must be one of/],
    [{ version: 1, clients: [{ client_id: 'a', redirect_uris: ['https://a/cb'], client_secret: 'TOPSECRET', token_endpoint_auth_method: 'none' }] }, /\/clients\/0\/client_secret is set but/],
    [{ version: 1, clients: [{ client_id: 'a', redirect_uris: ['https://a/cb'], token_endpoint_auth_method: 'client_secret_basic' }] }, /client_secret is required/],
    [{ version: 1, clients: [{ client_id: 'a', redirect_uris: ['https://a/cb'], client_secret: 'TOPSECRET', extra: 1 }] }, /\/clients\/0\/extra is not a known key/],
  ];
  for (const [doc, message] of bad) {
    const error = (() => { try { parseInlineSeed(JSON.stringify(doc)); } catch (e) { return e as Error; } return undefined; })();
    t.type(error, UserError);
    t.match(error?.message, message);
    t.notMatch(error?.message ?? '', /TOPSECRET/, 'never echoes the secret');
  }
  const syntax = (() => { try { parseInlineSeed('{"version":1,"clients":[{"client_secret":"TOPSECRET",}]}'); } catch (e) { return e as Error; } return undefined; })();
  t.match(syntax?.message, /^MCP_AUTH_SERVER_CONFIG: \/ is not valid JSON/);
  t.notMatch(syntax?.message ?? '', /TOPSECRET/, 'a syntax error does not quote the text');
});
