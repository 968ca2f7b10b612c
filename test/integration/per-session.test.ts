import t from 'tap';
import { ElicitRequestSchema, ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startGateway, connectClient, answerSampling, fixtureStdio, waitFor } from '../helpers/gateway.js';

const TOKEN = 'per-session-token-0000000000';
const AUTH = { providers: ['bearer'], bearer: { tokens: { [TOKEN]: { subject: 'ci', roles: ['admin'] } } } };
const CLIENT_CAPS = { sampling: {}, elicitation: {}, roots: { listChanged: true } };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('per-session backends: own process per session, server requests forwarded to the right client', async (t) => {
  const { mcpUrl } = await startGateway(t, {
    mcpServers: { mine: fixtureStdio({ sharing: 'per-session' }), common: fixtureStdio() },
    serverAuth: AUTH,
  });
  const alice = await connectClient(t, mcpUrl, TOKEN, CLIENT_CAPS);
  const bob = await connectClient(t, mcpUrl, TOKEN, CLIENT_CAPS);
  const asked: string[] = [];
  answerSampling(alice, 'alice', asked, (prompt) => `alice's model answers "${prompt}"`);
  answerSampling(bob, 'bob', asked, () => 'bob');
  alice.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { name: 'Alice' } }));
  alice.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///home/alice/project', name: 'project' }] }));

  const sampled = await alice.callTool({ name: 'mine__ask_llm', arguments: { prompt: 'ping?' } });
  t.same(sampled.content, [{ type: 'text', text: `llm said: alice's model answers "ping?"` }], 'sampling went to the calling client');
  t.same(asked, ['alice'], 'and to no other');
  const elicited = await alice.callTool({ name: 'mine__ask_user', arguments: {} });
  t.same(elicited.content, [{ type: 'text', text: 'user accept: {"name":"Alice"}' }], 'elicitation forwarded');
  const roots = await alice.callTool({ name: 'mine__list_roots', arguments: {} });
  t.same(roots.content, [{ type: 'text', text: 'file:///home/alice/project' }], 'roots forwarded');

  const pidA = (await alice.callTool({ name: 'mine__pid', arguments: {} })).structuredContent as { pid: number };
  const pidA2 = (await alice.callTool({ name: 'mine__pid', arguments: {} })).structuredContent as { pid: number };
  const pidB = (await bob.callTool({ name: 'mine__pid', arguments: {} })).structuredContent as { pid: number };
  t.equal(pidA.pid, pidA2.pid, 'one connection per session, reused');
  t.not(pidA.pid, pidB.pid, 'each session has its own backend process');
  const sharedA = (await alice.callTool({ name: 'common__pid', arguments: {} })).structuredContent as { pid: number };
  const sharedB = (await bob.callTool({ name: 'common__pid', arguments: {} })).structuredContent as { pid: number };
  t.equal(sharedA.pid, sharedB.pid, 'shared backends are shared');

  const refused = await alice.callTool({ name: 'common__ask_llm', arguments: {} }).then(() => undefined, (e: { code: number; message: string }) => e);
  t.ok(refused, 'a shared backend cannot send sampling requests to clients');
  t.match(refused?.message, /common: /);

  // Ending the session stops its backend process.
  await (alice.transport as StreamableHTTPClientTransport).terminateSession();
  await waitFor('per-session backend stopped', () => !alive(pidA.pid));
  t.ok(alive(pidB.pid), "another session's backend keeps running");
});
