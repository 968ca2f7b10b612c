import t from 'tap';
import { request } from 'undici';
import { startGateway, fixtureStdio } from '../helpers/gateway.js';

const ALICE = 'portability-alice-token-0000';
const BOB = 'portability-bob-token-000000';
const CONFIG = {
  mcpServers: { fx: fixtureStdio() },
  serverAuth: { providers: ['bearer'], bearer: { tokens: { [ALICE]: { subject: 'alice', roles: [] }, [BOB]: { subject: 'bob', roles: [] } } } },
};
const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' };

async function rpc(url: string, token: string, body: unknown, sessionId?: string) {
  const response = await request(url, {
    method: 'POST',
    headers: { ...HEADERS, authorization: `Bearer ${token}`, ...(sessionId ? { 'mcp-session-id': sessionId } : {}) },
    body: JSON.stringify(body),
  });
  const text = await response.body.text();
  return { status: response.statusCode, sessionId: response.headers['mcp-session-id'] as string | undefined, json: text ? JSON.parse(text) : undefined };
}

t.test('a session created on one replica keeps working on another (no sticky load balancing needed)', async (t) => {
  const a = await startGateway(t, CONFIG);
  const b = await startGateway(t, CONFIG);
  const init = await rpc(a.mcpUrl, ALICE, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: { sampling: {} }, clientInfo: { name: 'x', version: '1' } } });
  t.equal(init.status, 200);
  const id = init.sessionId!;
  t.match(id, /^[\x21-\x7e]+$/, 'visible ASCII');

  const onB = await rpc(b.mcpUrl, ALICE, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, id);
  t.equal(onB.status, 200, 'replica B takes the session over');
  t.ok(onB.json.result.tools.some((tool: { name: string }) => tool.name === 'fx__echo'));
  const call = await rpc(b.mcpUrl, ALICE, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'fx__echo', arguments: { text: 'on b' } } }, id);
  t.match(JSON.stringify(call.json.result.content), /on b/);

  t.equal((await rpc(b.mcpUrl, BOB, { jsonrpc: '2.0', id: 4, method: 'ping' }, id)).status, 404, "another identity cannot use alice's session on any replica");
  t.equal((await rpc(a.mcpUrl, BOB, { jsonrpc: '2.0', id: 4, method: 'ping' }, id)).status, 404);
  const forged = id.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
  t.equal((await rpc(b.mcpUrl, ALICE, { jsonrpc: '2.0', id: 5, method: 'ping' }, forged)).status, 404, 'a tampered id is unknown');
  t.equal((await rpc(b.mcpUrl, ALICE, { jsonrpc: '2.0', id: 6, method: 'ping' }, 'made-up')).status, 404);
});

t.test('replicas with different secrets do not accept each other\'s sessions', async (t) => {
  const a = await startGateway(t, CONFIG);
  const other = await startGateway(t, { ...CONFIG, serverAuth: { providers: ['bearer'], bearer: { tokens: { [ALICE]: { subject: 'alice', roles: [] } } } } });
  const init = await rpc(a.mcpUrl, ALICE, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
  t.equal((await rpc(other.mcpUrl, ALICE, { jsonrpc: '2.0', id: 2, method: 'ping' }, init.sessionId)).status, 404);
});
