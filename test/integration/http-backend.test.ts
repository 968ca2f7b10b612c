import t, { type Test } from 'tap';
import { once } from 'node:events';
import { request } from 'undici';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startGateway, connectClient, answerSampling, startFixtureHttp, spawnListening, waitFor, FIXTURE_SERVER } from '../helpers/gateway.js';

// The gateway forwards requests to Streamable HTTP backends with its own POSTs (src/backends/http-post.ts)
// and its own request ids, timeouts and cancellation (src/backends/channel.ts). These tests drive that
// path with real components: the SDK fixture server over Streamable HTTP, the gateway, the SDK client.

const TOKEN = 'http-backend-token-0000000000';
const AUTH = { providers: ['bearer'], bearer: { tokens: { [TOKEN]: { subject: 'ci', roles: ['admin'] } } } };

type RpcFailure = { code: number; message: string; data?: unknown };

function failureOf(promise: Promise<unknown>): Promise<RpcFailure | undefined> {
  return promise.then(() => undefined, (error: unknown) => error as RpcFailure);
}

function text(result: Record<string, unknown>): string {
  return ((result.content as Array<{ text?: string }> | undefined)?.[0]?.text) ?? '';
}

interface Cancellation {
  requestId: string | number;
  reason: string | null;
  tool: string;
}

/** What the fixture process saw cancelled with notifications/cancelled (every session of that process). */
async function cancellations(client: Client, tool: string): Promise<Cancellation[]> {
  const result = await client.callTool({ name: tool, arguments: {} });
  return (result.structuredContent as { cancellations: Cancellation[] }).cancellations;
}

/** The fixture's HTTP counters: POSTs whose response is still open (the asking one included), streams resumed. */
async function httpStats(client: Client, tool: string): Promise<{ openPosts: number; resumedStreams: number }> {
  const result = await client.callTool({ name: tool, arguments: {} });
  return result.structuredContent as { openPosts: number; resumedStreams: number };
}

/** Polls `probe` until `done(value)` or `ms` pass; returns the last value. */
async function poll<T>(probe: () => Promise<T>, done: (value: T) => boolean, ms: number, every = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, every));
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// When the gateway gives up on an HTTP request (timeout or cancellation) it must close that
// request's SSE response: the SDK server never answers a cancelled request but writes a keep-alive
// comment every 15 s, so an abandoned stream would hold its connection (and Gateway.close()) for good.

/** One gateway in front of the fixture over Streamable HTTP, and one SDK client session. */
async function setup(t: Test, backend: Record<string, unknown> = {}, capabilities: Record<string, unknown> = {}) {
  const fixture = await startFixtureHttp(t, 'http');
  const { mcpUrl, gateway } = await startGateway(t, {
    mcpServers: { remote: { url: fixture.url, transport: 'streamable-http', ...backend } },
    serverAuth: AUTH,
  });
  t.equal(gateway.backendStates().remote, 'ready', 'the HTTP backend is connected');
  const client = await connectClient(t, mcpUrl, TOKEN, capabilities);
  return { fixture, mcpUrl, gateway, client };
}

/** Reads an SSE body to its end: the JSON messages of its `message` events, in order. */
function sseMessages(body: string): Array<Record<string, any>> {
  const messages: Array<Record<string, any>> = [];
  for (const block of body.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((line) => line.startsWith('data:')).map((line) => line.slice(5).replace(/^ /, '')).join('\n');
    const event = /^event:\s*(.*)$/m.exec(block)?.[1];
    if (data && (!event || event === 'message')) messages.push(JSON.parse(data));
  }
  return messages;
}

t.test('tools/call answered on an SSE stream: every progress notification, then the result', async (t) => {
  const { client, mcpUrl } = await setup(t);

  // Through the SDK client, as an application would use it.
  const progress: Array<{ progress: number; total?: number; message?: string }> = [];
  const result = await client.callTool({ name: 'remote__slow', arguments: { ms: 600, steps: 3 } }, undefined, {
    onprogress: (p) => progress.push(p),
  });
  t.same(result.content, [{ type: 'text', text: 'slept 600' }], 'the result arrives');
  // As in aggregation.test.ts: the SDK client drops a progress notification read together with the
  // response, so the last step may be missing here; the raw stream below must carry all of them.
  t.same(progress.map((p) => p.progress), [1, 2, 3].slice(0, progress.length), 'progress arrives in order');
  t.ok(progress.length >= 2, 'progress notifications reached the SDK client');
  t.same(progress[0], { progress: 1, total: 3, message: 'step 1' }, 'progress fields kept (total, message)');

  // The raw stream of the gateway's response: each progress event, with the client's own token, before the answer.
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${TOKEN}` };
  const init = await request(mcpUrl, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
  });
  await init.body.text();
  const session = { ...headers, 'mcp-session-id': String(init.headers['mcp-session-id']), 'mcp-protocol-version': '2025-11-25' };
  const initialized = await request(mcpUrl, { method: 'POST', headers: session, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
  await initialized.body.text();
  const call = await request(mcpUrl, {
    method: 'POST',
    headers: session,
    body: JSON.stringify({ jsonrpc: '2.0', id: 'call-1', method: 'tools/call', params: { name: 'remote__slow', arguments: { ms: 600, steps: 3 }, _meta: { progressToken: 'raw-token' } } }),
  });
  t.equal(call.statusCode, 200, 'the call is accepted');
  t.match(String(call.headers['content-type']), /^text\/event-stream/, 'the gateway streams the answer');
  const messages = sseMessages(await call.body.text());
  t.same(
    messages.map((m) => (m.method === 'notifications/progress' ? `progress ${m.params.progress}/${m.params.total} ${m.params.progressToken}` : `answer ${m.id}`)),
    ['progress 1/3 raw-token', 'progress 2/3 raw-token', 'progress 3/3 raw-token', 'answer call-1'],
    'three progress notifications with the client token, then the answer',
  );
  t.same(messages.at(-1)?.result?.content, [{ type: 'text', text: 'slept 600' }], 'the answer is the backend result');
});

t.test('a logging notification sent during an HTTP call reaches the caller, and the call answers', async (t) => {
  const { client, mcpUrl } = await setup(t);
  const bystander = await connectClient(t, mcpUrl, TOKEN);
  const logs: Array<{ level: string; logger?: string; data: unknown }> = [];
  const bystanderLogs: unknown[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(n.params);
  });
  bystander.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    bystanderLogs.push(n.params);
  });
  // As in aggregation.test.ts, onprogress makes the gateway answer on a stream, where the log travels.
  const result = await client.callTool({ name: 'remote__log', arguments: { message: 'over http' } }, undefined, { onprogress: () => {} });
  t.same(result.content, [{ type: 'text', text: 'logged' }], 'the call answers');
  await waitFor('log notification', () => logs.length > 0, 5000).catch(() => {});
  t.same(logs, [{ level: 'warning', logger: 'remote/fixture', data: 'over http' }], 'the log reached the caller, its logger prefixed with the backend');
  t.same(bystanderLogs, [], 'another session does not receive it');
});

t.test('a backend timeout fails the call promptly, tells the backend, and the backend keeps working', async (t) => {
  const { client, gateway } = await setup(t, { timeoutSeconds: 1 });
  const started = Date.now();
  const failure = await failureOf(client.callTool({ name: 'remote__slow', arguments: { ms: 5000 } }));
  const elapsed = Date.now() - started;
  t.ok(failure, 'the call fails');
  t.equal(failure?.code, -32001, 'as RequestTimeout');
  t.match(failure?.message, /remote: .*timed out/i, 'the error names the backend and the timeout');
  t.ok(elapsed < 4000, `promptly (${elapsed} ms, timeout 1 s, the backend would take 5 s)`);

  const echoed = await client.callTool({ name: 'remote__echo', arguments: { text: 'after the timeout' } });
  t.equal(text(echoed), 'after the timeout', 'a following call works');

  const seen = await poll(async () => (await cancellations(client, 'remote__cancellations')).filter((c) => c.tool === 'slow'), (c) => c.length > 0, 3000);
  t.equal(seen.length, 1, 'the backend received notifications/cancelled for the timed-out request');
  t.match(String(seen[0]?.requestId), /^gatehouse-\d+$/, "with the gateway's own request id");
  t.equal(seen[0]?.reason, 'timeout', 'and the reason');

  const { openPosts } = await poll(() => httpStats(client, 'remote__http_stats'), (s) => s.openPosts === 1, 3000);
  t.equal(openPosts, 1, 'the response stream of the timed-out request is closed (only the asking POST is open)');
  const closed = await Promise.race([gateway.close().then(() => true), sleep(5000).then(() => false)]);
  t.ok(closed, 'the gateway shuts down promptly after a timed-out HTTP call');
});

t.test('client cancellation of an HTTP call: prompt rejection, the backend is told, the session keeps working', async (t) => {
  const { client } = await setup(t);
  const controller = new AbortController();
  const pending = client.callTool({ name: 'remote__slow', arguments: { ms: 20_000 } }, undefined, { signal: controller.signal });
  setTimeout(() => controller.abort('user cancelled'), 200);
  const started = Date.now();
  await t.rejects(pending, 'the cancelled call rejects');
  t.ok(Date.now() - started < 5000, 'promptly');

  const seen = await poll(async () => (await cancellations(client, 'remote__cancellations')).filter((c) => c.tool === 'slow'), (c) => c.length > 0, 5000);
  t.equal(seen.length, 1, 'the backend received notifications/cancelled and aborted the handler');
  t.match(String(seen[0]?.requestId), /^gatehouse-\d+$/, "with the gateway's own request id");
  t.match(seen[0]?.reason, /user cancelled/, "with the client's reason");

  const next = await client.callTool({ name: 'remote__echo', arguments: { text: 'after cancel' } });
  t.equal(text(next), 'after cancel', 'the session keeps working');
  const again = await client.callTool({ name: 'remote__slow', arguments: { ms: 100 } });
  t.equal(text(again), 'slept 100', 'and so does the backend');

  const { openPosts } = await poll(() => httpStats(client, 'remote__http_stats'), (s) => s.openPosts === 1, 3000);
  t.equal(openPosts, 1, 'the response stream of the cancelled request is closed (only the asking POST is open)');
});

t.test('a backend that lost the session (restarted on the same port) is reconnected without restarting the gateway', async (t) => {
  const { fixture, gateway, client } = await setup(t);
  const before = await client.callTool({ name: 'remote__pid', arguments: {} });
  t.equal((before.structuredContent as { pid: number }).pid, fixture.child.pid, 'served by the first fixture process');

  fixture.child.kill('SIGKILL');
  if (fixture.child.exitCode === null && fixture.child.signalCode === null) await once(fixture.child, 'exit');
  const replacement = await startFixtureHttp(t, 'http', fixture.port);
  t.equal(replacement.port, fixture.port, 'the new process listens on the same port (it does not know the old session id)');

  const failures: string[] = [];
  const started = Date.now();
  const pid = await poll(async () => {
    try {
      const result = await client.callTool({ name: 'remote__pid', arguments: {} });
      return (result.structuredContent as { pid: number }).pid;
    } catch (error) {
      failures.push((error as Error).message);
      return undefined;
    }
  }, (value) => value !== undefined, 15_000, 200);
  t.comment(`recovered after ${Date.now() - started} ms; failed calls on the way: ${JSON.stringify(failures)}`);
  t.equal(pid, replacement.child.pid, 'a call succeeds again within 15 s, served by the new process');
  const echoed = await failureOf(client.callTool({ name: 'remote__echo', arguments: { text: 'back' } }).then((r) => {
    t.equal(text(r), 'back', 'remote__echo works again');
  }));
  t.notOk(echoed, 'remote__echo does not fail');
  // Calls are served as soon as the new connection is initialized; the state turns 'ready' once its lists are read.
  const ready = await waitFor('backend ready', () => gateway.backendStates().remote === 'ready', 5000).then(() => true, () => false);
  t.ok(ready, `the backend is reported ready again (state: ${gateway.backendStates().remote})`);
  t.ok(failures.length <= 3, `at most a few calls failed on the way (${failures.length})`);
});

t.test('a per-session HTTP backend sends sampling requests to the calling client', async (t) => {
  const fixture = await startFixtureHttp(t, 'http');
  const { mcpUrl } = await startGateway(t, {
    mcpServers: { mine: { url: fixture.url, transport: 'streamable-http', sharing: 'per-session' } },
    serverAuth: AUTH,
  });
  const alice = await connectClient(t, mcpUrl, TOKEN, { sampling: {} });
  const bob = await connectClient(t, mcpUrl, TOKEN, { sampling: {} });
  const asked: string[] = [];
  answerSampling(alice, 'alice', asked, (prompt) => `alice's model answers "${prompt}"`);
  answerSampling(bob, 'bob', asked, () => 'bob');
  const sampled = await alice.callTool({ name: 'mine__ask_llm', arguments: { prompt: 'over http?' } });
  t.same(sampled.content, [{ type: 'text', text: `llm said: alice's model answers "over http?"` }], 'the sampling answer came back into the tool result');
  t.same(asked, ['alice'], 'only the calling client was asked');

  const bobs = await bob.callTool({ name: 'mine__ask_llm', arguments: { prompt: 'x' } });
  t.same(bobs.content, [{ type: 'text', text: 'llm said: bob' }], "the other session's own connection asks its own client");
  t.same(asked, ['alice', 'bob'], 'and only that client');
});

t.test('JSON-RPC errors from an HTTP backend keep their code, message and data', async (t) => {
  const { client } = await setup(t);
  const failure = await failureOf(client.callTool({ name: 'remote__fail', arguments: { code: -32042 } }));
  t.equal(failure?.code, -32042, 'backend error code preserved');
  t.match(failure?.message, /^MCP error -32042: remote: (MCP error -32042: )?deliberate failure$/, 'backend message kept, prefixed with the backend name');
  t.same(failure?.data, { detail: 'from fixture' }, 'error data preserved');

  const other = await failureOf(client.callTool({ name: 'remote__fail', arguments: { code: -32603 } }));
  t.equal(other?.code, -32603, 'another code preserved too');
  const echoed = await client.callTool({ name: 'remote__echo', arguments: { text: 'still fine' } });
  t.equal(text(echoed), 'still fine', 'the backend keeps answering after errors');
});

t.test('50 concurrent calls over the HTTP backend each get their own answer', async (t) => {
  const { client } = await setup(t);
  const texts = Array.from({ length: 50 }, (_, i) => `concurrent-${i}-${Math.random().toString(36).slice(2)}`);
  const results = await Promise.all(texts.map((value) => client.callTool({ name: 'remote__echo', arguments: { text: value } })));
  t.same(results.map(text), texts, 'every call got its own text back');
  const slowResults = await Promise.all(Array.from({ length: 5 }, () => client.callTool({ name: 'remote__slow', arguments: { ms: 300 } })));
  t.same(slowResults.map(text), Array(5).fill('slept 300'), 'overlapping slow calls all answer');
});

t.test('a response stream the backend closes before answering is resumed with Last-Event-ID', async (t) => {
  // The fixture with an event store: it primes each response stream with an event id and can end it early.
  const { port } = await spawnListening(t, process.execPath, [FIXTURE_SERVER, 'http', '0'], { FIXTURE_RESUMABLE: '1' });
  const { mcpUrl } = await startGateway(t, {
    mcpServers: { remote: { url: `http://127.0.0.1:${port}/mcp`, transport: 'streamable-http' } },
    serverAuth: AUTH,
  });
  const client = await connectClient(t, mcpUrl, TOKEN);
  const started = Date.now();
  const result = await failureOf(client.callTool({ name: 'remote__interrupt', arguments: { ms: 300 } }).then((r) => {
    t.same(r.structuredContent, { closed: true }, 'the backend closed the response stream before answering');
    t.equal(text(r), 'answered after closing the stream', 'the answer arrived over the resumed stream');
  }));
  t.notOk(result, 'the call does not fail');
  t.ok(Date.now() - started < 5000, 'promptly');
  t.equal((await httpStats(client, 'remote__http_stats')).resumedStreams, 1, 'the gateway resumed the stream once (GET with Last-Event-ID)');
  const echoed = await client.callTool({ name: 'remote__echo', arguments: { text: 'after resume' } });
  t.equal(text(echoed), 'after resume', 'the backend keeps working');
});
