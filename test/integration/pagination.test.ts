import t from 'tap';
import { request } from 'undici';
import { fileURLToPath } from 'node:url';
import { startGateway, connectClient } from '../helpers/gateway.js';

// An SDK-built backend listing TOOLS tools (the one the benchmark uses).
const MANY_TOOLS_SERVER = fileURLToPath(new URL('../../bench/backend.mjs', import.meta.url));
const ADMIN = 'test-admin-token-0123456789';
const READER = 'test-reader-token-0123456789';

t.test('large catalogues are paged 1000 at a time, per caller, the same on every call', async (t) => {
  const backend = (name: string) => ({ command: process.execPath, args: [MANY_TOOLS_SERVER, 'stdio'], env: { TOOLS: '600', NAME: name } });
  const { mcpUrl } = await startGateway(t, {
    mcpServers: { a: backend('a'), b: backend('b'), c: backend('c') },
    serverAuth: { providers: ['bearer'], bearer: { tokens: { [ADMIN]: { subject: 'admin', roles: ['admin'] }, [READER]: { subject: 'reader', roles: ['reader'] } } } },
    acl: { default: 'deny', rules: [{ roles: ['admin'], tools: ['*'], policy: 'allow' }, { roles: ['reader'], tools: ['a__*', 'c__tool_1*'], policy: 'allow' }] },
  });

  const admin = await connectClient(t, mcpUrl, ADMIN);
  const pages: string[][] = [];
  let cursor: string | undefined;
  do {
    const page = await admin.listTools(cursor ? { cursor } : {});
    pages.push(page.tools.map((tool) => tool.name));
    cursor = page.nextCursor;
  } while (cursor && pages.length < 10);
  t.same(pages.map((p) => p.length), [1000, 800], 'two pages: 1000 then the rest');
  const all = pages.flat();
  t.equal(new Set(all).size, 1800, 'no tool twice, none missing');
  for (const prefix of ['a', 'b', 'c']) t.ok(all.includes(`${prefix}__echo`) && all.includes(`${prefix}__tool_599`), `${prefix} complete`);

  const again = await admin.listTools({});
  t.same(again.tools.map((tool) => tool.name), pages[0], 'a cached page is the same page');
  t.same(again.nextCursor, (await admin.listTools({})).nextCursor, 'with the same cursor');

  const reader = await connectClient(t, mcpUrl, READER);
  const readerList = await reader.listTools({});
  const readerNames = readerList.tools.map((tool) => tool.name);
  t.equal(readerList.nextCursor, undefined, 'one page for the reader');
  t.equal(readerNames.length, 600 + 111, 'a__* and c__tool_1* (tool_1, tool_10..19, tool_100..199)');
  t.ok(readerNames.every((n) => n.startsWith('a__') || n.startsWith('c__tool_1')), 'nothing the ACL hides');

  // The same cached page inside a batch, next to another response.
  const init = await request(mcpUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${READER}` }, body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }) });
  await init.body.text();
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${READER}`, 'mcp-session-id': String(init.headers['mcp-session-id']), 'mcp-protocol-version': '2025-06-18' };
  const batch = await request(mcpUrl, { method: 'POST', headers, body: JSON.stringify([{ jsonrpc: '2.0', id: 'list', method: 'tools/list' }, { jsonrpc: '2.0', id: 'p', method: 'ping' }]) });
  const answers = await batch.body.json() as Array<{ id: string; result: { tools?: Array<{ name: string }> } }>;
  t.same(answers.map((a) => a.id), ['list', 'p']);
  t.same(answers[0]!.result.tools!.map((tool) => tool.name), readerNames, 'the batch carries the same list');
  t.same(answers[1]!.result, {});
});
