import t from 'tap';
import { request } from 'undici';
import { startGateway, fixtureStdio } from '../helpers/gateway.js';

const ADMIN = 'transport-admin-token-000000';
const OTHER = 'transport-other-token-000000';

const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await request(url, { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, text, json: text ? safeJson(text) : undefined };
}

function safeJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

t.test('Streamable HTTP transport rules on /mcp', async (t) => {
  const { mcpUrl, url } = await startGateway(t, {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: {
      providers: ['bearer'],
      bearer: { tokens: { [ADMIN]: { subject: 'alice', roles: ['admin'] }, [OTHER]: { subject: 'bob', roles: ['admin'] } } },
    },
    http: { mcpBodyLimitBytes: 2048 },
  });
  const auth = { authorization: `Bearer ${ADMIN}` };

  await t.test('no credential → 401 with a Bearer challenge', async (t) => {
    const res = await post(mcpUrl, INIT);
    t.equal(res.status, 401);
    t.equal(res.headers['www-authenticate'], 'Bearer');
    t.equal(res.json.error.code, -32000);
  });

  await t.test('unknown opaque token → 401 invalid_token', async (t) => {
    const res = await post(mcpUrl, INIT, { authorization: 'Bearer nope' });
    t.equal(res.status, 401);
    t.match(res.headers['www-authenticate'], /^Bearer error="invalid_token"/);
    t.notMatch(res.text, /nope/, 'the token is never echoed');
  });

  await t.test('GET and DELETE are authenticated too', async (t) => {
    for (const method of ['GET', 'DELETE'] as const) {
      const res = await request(mcpUrl, { method, headers: { accept: 'text/event-stream', 'mcp-session-id': 'x' } });
      await res.body.text();
      t.equal(res.statusCode, 401, `${method} without a token`);
    }
  });

  const init = await post(mcpUrl, INIT, auth);
  t.equal(init.status, 200);
  const sessionId = init.headers['mcp-session-id'] as string;
  t.match(sessionId, /^[\x21-\x7e]{20,}$/, 'session id is visible ASCII and long');
  t.equal(init.json.result.protocolVersion, '2025-11-25');
  t.equal(init.json.result.serverInfo.name, 'gatehouse');

  await t.test('version negotiation', async (t) => {
    for (const [asked, expected] of [['2025-06-18', '2025-06-18'], ['2025-03-26', '2025-03-26'], ['1999-01-01', '2025-11-25']]) {
      const res = await post(mcpUrl, { ...INIT, params: { ...INIT.params, protocolVersion: asked } }, auth);
      t.equal(res.json.result.protocolVersion, expected, `${asked} → ${expected}`);
    }
  });

  const session = { ...auth, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' };

  await t.test('notifications get 202, requests answer JSON', async (t) => {
    const note = await post(mcpUrl, { jsonrpc: '2.0', method: 'notifications/initialized' }, session);
    t.equal(note.status, 202);
    const ping = await post(mcpUrl, { jsonrpc: '2.0', id: 7, method: 'ping' }, session);
    t.same(ping.json, { jsonrpc: '2.0', id: 7, result: {} });
  });

  await t.test('missing session → 400, unknown → 404, unsupported protocol version → 400', async (t) => {
    const missing = await post(mcpUrl, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, auth);
    t.equal(missing.status, 400);
    const unknown = await post(mcpUrl, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { ...auth, 'mcp-session-id': 'not-a-session' });
    t.equal(unknown.status, 404);
    const badVersion = await post(mcpUrl, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { ...session, 'mcp-protocol-version': '2099-01-01' });
    t.equal(badVersion.status, 400);
    t.match(badVersion.json.error.message, /MCP-Protocol-Version/);
  });

  await t.test("a session is bound to its identity: another user's token gets 404", async (t) => {
    const res = await post(mcpUrl, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, { ...session, authorization: `Bearer ${OTHER}` });
    t.equal(res.status, 404);
    const again = await post(mcpUrl, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, session);
    t.equal(again.status, 200, 'the owner still uses it');
    t.ok(again.json.result.tools.length > 0);
  });

  await t.test('a session is never a credential', async (t) => {
    const res = await post(mcpUrl, { jsonrpc: '2.0', id: 4, method: 'tools/list' }, { 'mcp-session-id': sessionId });
    t.equal(res.status, 401);
  });

  await t.test('Origin and Host checks (DNS rebinding)', async (t) => {
    const evil = await post(mcpUrl, { jsonrpc: '2.0', id: 5, method: 'ping' }, { ...session, origin: 'http://evil.example.com' });
    t.equal(evil.status, 403);
    const rebind = await post(mcpUrl, { jsonrpc: '2.0', id: 5, method: 'ping' }, { ...session, host: 'evil.example.com', origin: 'http://evil.example.com' });
    t.equal(rebind.status, 403);
    const local = await post(mcpUrl, { jsonrpc: '2.0', id: 5, method: 'ping' }, { ...session, origin: url.replace('127.0.0.1', 'localhost') });
    t.equal(local.status, 200);
    t.equal(local.headers['access-control-allow-origin'], url.replace('127.0.0.1', 'localhost'));
  });

  await t.test('malformed input', async (t) => {
    const parse = await post(mcpUrl, '{not json', session);
    t.equal(parse.status, 400);
    t.equal(parse.json.error.code, -32700);
    const invalid = await post(mcpUrl, { hello: 'world' }, session);
    t.equal(invalid.status, 400);
    t.equal(invalid.json.error.code, -32600);
    const unknownMethod = await post(mcpUrl, { jsonrpc: '2.0', id: 9, method: 'does/not/exist' }, session);
    t.equal(unknownMethod.json.error.code, -32601);
    const big = await post(mcpUrl, { jsonrpc: '2.0', id: 10, method: 'ping', params: { pad: 'x'.repeat(5000) } }, session);
    t.equal(big.status, 413);
    const wrongType = await post(mcpUrl, 'x', { ...session, 'content-type': 'text/plain' });
    t.equal(wrongType.status, 415);
  });

  await t.test('batch of requests answers an array', async (t) => {
    const res = await post(mcpUrl, [{ jsonrpc: '2.0', id: 'a', method: 'ping' }, { jsonrpc: '2.0', id: 'b', method: 'ping' }], session);
    t.same(res.json, [{ jsonrpc: '2.0', id: 'a', result: {} }, { jsonrpc: '2.0', id: 'b', result: {} }]);
  });

  await t.test('progress requests stream as SSE', async (t) => {
    // The fixture sends its last progress notification right before the result; none may be lost.
    for (let round = 0; round < 5; round++) {
      const res = await post(mcpUrl, { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'fx__slow', arguments: { ms: 60, steps: 3 }, _meta: { progressToken: 'tok' } } }, session);
      t.match(res.headers['content-type'], /text\/event-stream/);
      const events = res.text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
      t.same(events.filter((e) => e.method === 'notifications/progress').map((e) => [e.params.progressToken, e.params.progress]), [['tok', 1], ['tok', 2], ['tok', 3]], `round ${round}: every progress step`);
      t.equal(events.at(-1).id, 11);
    }
  });

  await t.test('GET opens a notification stream; DELETE ends the session; then 404', async (t) => {
    const get = await request(mcpUrl, { method: 'GET', headers: { ...session, accept: 'text/event-stream' } });
    t.equal(get.statusCode, 200);
    t.match(get.headers['content-type'], /text\/event-stream/);
    const del = await request(mcpUrl, { method: 'DELETE', headers: session });
    await del.body.text();
    t.equal(del.statusCode, 200);
    await get.body.text(); // the stream ends when the session does
    const after = await post(mcpUrl, { jsonrpc: '2.0', id: 12, method: 'ping' }, session);
    t.equal(after.status, 404);
  });

  await t.test('health endpoints', async (t) => {
    const health = await request(`${url}/healthz`);
    t.equal(health.statusCode, 200);
    t.same(await health.body.json(), { status: 'ok' });
    const ready = await request(`${url}/readyz`);
    t.equal(ready.statusCode, 200);
    t.same(((await ready.body.json()) as { backends: unknown }).backends, { fx: 'ready' });
  });
});
