import t from 'tap';
import { startGateway, connectClient, fixtureStdio, waitFor } from '../helpers/gateway.js';

const TOKEN = 'resilience-token-00000000000';
const AUTH = { providers: ['bearer'], bearer: { tokens: { [TOKEN]: { subject: 'ci', roles: ['admin'] } } } };

t.test('a crashed stdio backend fails fast, is restarted, and works again', async (t) => {
  const { mcpUrl, gateway } = await startGateway(t, { mcpServers: { fx: fixtureStdio(), steady: fixtureStdio() }, serverAuth: AUTH });
  const client = await connectClient(t, mcpUrl, TOKEN);
  await client.callTool({ name: 'fx__crash', arguments: {} });
  await waitFor('backend down', () => gateway.backendStates().fx !== 'ready');
  const during = await client.callTool({ name: 'fx__echo', arguments: { text: 'x' } }).then(() => 'answered', (e: Error) => e.message);
  if (during !== 'answered') t.match(during, /Backend "fx" is unavailable/, 'calls fail fast with a clear error while it restarts');
  const other = await client.callTool({ name: 'steady__echo', arguments: { text: 'still here' } });
  t.match(JSON.stringify(other.content), /still here/, 'other backends keep working');
  await waitFor('backend restarted', () => gateway.backendStates().fx === 'ready', 20_000);
  const after = await client.callTool({ name: 'fx__echo', arguments: { text: 'back' } });
  t.match(JSON.stringify(after.content), /back/, 'the restarted backend answers');
});

t.test('a hung backend blocks neither listing nor other backends', async (t) => {
  const started = Date.now();
  const { mcpUrl, gateway } = await startGateway(t, {
    mcpServers: {
      // Never answers initialize.
      hung: { command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], timeoutSeconds: 30 },
      fx: fixtureStdio({ timeoutSeconds: 2 }),
    },
    serverAuth: AUTH,
    aggregation: { startupWaitMs: 1500 },
  }, {}, { waitForBackends: false });
  const client = await connectClient(t, mcpUrl, TOKEN);
  await waitFor('fx ready', () => gateway.backendStates().fx === 'ready');
  const listStarted = Date.now();
  const { tools } = await client.listTools();
  t.ok(Date.now() - listStarted < 5000, 'tools/list answered within the startup bound');
  t.ok(tools.some((tool) => tool.name === 'fx__echo'), 'ready backend listed');
  t.notOk(tools.some((tool) => tool.name.startsWith('hung__')), 'hung backend not listed');
  t.equal(gateway.backendStates().hung, 'starting');

  const slow = client.callTool({ name: 'fx__slow', arguments: { ms: 1500 } });
  const fast = await client.callTool({ name: 'fx__echo', arguments: { text: 'quick' } });
  t.match(JSON.stringify(fast.content), /quick/, 'a slow call does not block another');
  await slow;

  const timedOut = await client.callTool({ name: 'fx__slow', arguments: { ms: 10_000 } }).then(() => undefined, (e: { code: number; message: string }) => e);
  t.equal(timedOut?.code, -32001, 'backend timeout surfaces as RequestTimeout');
  t.match(timedOut?.message, /fx: .*timed out/i);
  t.ok(Date.now() - started < 25_000);
});

t.test('client cancellation is forwarded to the backend', async (t) => {
  const { mcpUrl } = await startGateway(t, { mcpServers: { fx: fixtureStdio() }, serverAuth: AUTH });
  const client = await connectClient(t, mcpUrl, TOKEN);
  const controller = new AbortController();
  const pending = client.callTool({ name: 'fx__slow', arguments: { ms: 20_000 } }, undefined, { signal: controller.signal });
  setTimeout(() => controller.abort('user cancelled'), 200);
  const started = Date.now();
  await t.rejects(pending);
  t.ok(Date.now() - started < 5000, 'cancelled promptly');
  const next = await client.callTool({ name: 'fx__echo', arguments: { text: 'after cancel' } });
  t.match(JSON.stringify(next.content), /after cancel/);
});
