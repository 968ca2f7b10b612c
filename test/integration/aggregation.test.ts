import t from 'tap';
import { CallToolResultSchema, ReadResourceResultSchema, LoggingMessageNotificationSchema, ToolListChangedNotificationSchema, ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startGateway, connectClient, fixtureStdio, startFixtureHttp, EVERYTHING_SERVER, waitFor } from '../helpers/gateway.js';

const TOKEN = 'test-admin-token-0123456789';

t.test('aggregates stdio, Streamable HTTP and SSE backends with prefixed names', async (t) => {
  const http = await startFixtureHttp(t, 'http');
  const sse = await startFixtureHttp(t, 'sse');
  const { mcpUrl } = await startGateway(t, {
    mcpServers: {
      local: fixtureStdio(),
      remote: { url: http.url, transport: 'streamable-http' },
      legacy: { url: sse.url, transport: 'sse' },
      auto: { url: sse.url },
      everything: { command: process.execPath, args: [EVERYTHING_SERVER, 'stdio'] },
    },
    serverAuth: { providers: ['bearer'], bearer: { tokens: { [TOKEN]: { subject: 'ci', roles: ['admin'] } } } },
  });
  const client = await connectClient(t, mcpUrl, TOKEN);
  const { tools } = await client.listTools();
  const names = tools.map((tool) => tool.name);
  for (const prefix of ['local', 'remote', 'legacy', 'auto']) {
    t.ok(names.includes(`${prefix}__echo`), `${prefix}__echo is listed`);
    t.ok(names.includes(`${prefix}__add_tool`), `${prefix} list was paginated to the end`);
  }
  t.ok(names.some((n) => n.startsWith('everything__')), 'server-everything tools are listed');
  t.equal(new Set(names).size, names.length, 'no duplicate names');

  for (const prefix of ['local', 'remote', 'legacy', 'auto']) {
    const result = await client.callTool({ name: `${prefix}__echo`, arguments: { text: `via ${prefix}` } });
    t.same(result.content, [{ type: 'text', text: `via ${prefix}`, annotations: { audience: ['assistant'] }, _meta: { 'example.com/k': 1 } }], `${prefix} echo`);
  }
  const everythingEcho = tools.find((tool) => tool.name === 'everything__echo');
  t.ok(everythingEcho, 'server-everything echo listed');
  const echoed = await client.callTool({ name: 'everything__echo', arguments: { message: 'hi' } });
  t.match(JSON.stringify(echoed.content), /hi/, 'server-everything echo answers');
});

t.test('fidelity: every content type, structured content, annotations, _meta and errors arrive intact', async (t) => {
  const { mcpUrl } = await startGateway(t, {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: { providers: ['bearer'], bearer: { tokens: { [TOKEN]: { subject: 'ci', roles: ['admin'] } } } },
  });
  const client = await connectClient(t, mcpUrl, TOKEN);
  const { tools } = await client.listTools();
  const echo = tools.find((tool) => tool.name === 'fx__echo')!;
  t.equal(echo.title, 'Echo');
  t.same(echo.annotations, { readOnlyHint: true, title: 'Echo tool' });
  t.same(echo._meta, { 'example.com/owner': 'tests' });
  t.equal(echo.description, '[fx] Echoes its input', 'description tagged with the backend');
  const structuredTool = tools.find((tool) => tool.name === 'fx__structured')!;
  t.same(structuredTool.outputSchema, { type: 'object', properties: { sum: { type: 'number' }, items: { type: 'array', items: { type: 'string' } } }, required: ['sum'] });

  const structured = await client.callTool({ name: 'fx__structured', arguments: {} });
  t.same(structured.structuredContent, { sum: 3, items: ['a', 'b'] });

  const echoed = await client.request({ method: 'tools/call', params: { name: 'fx__echo', arguments: { text: 'x' } } }, CallToolResultSchema);
  t.same(echoed._meta, { 'example.com/result': 'kept' }, 'result _meta kept');

  const all = await client.callTool({ name: 'fx__everything_content', arguments: {} });
  const content = all.content as Array<Record<string, unknown>>;
  t.same(content.map((c) => c.type), ['text', 'image', 'audio', 'resource_link', 'resource', 'resource']);
  t.same(content[1], { type: 'image', data: 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', mimeType: 'image/png', annotations: { priority: 1 } });
  t.same(content[2], { type: 'audio', data: 'UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=', mimeType: 'audio/wav' });
  t.same(content[3], { type: 'resource_link', uri: 'fx+fixture://docs/readme', name: 'readme', mimeType: 'text/plain', description: 'the readme' }, 'resource_link points at the gateway URI');
  t.same(content[4], { type: 'resource', resource: { uri: 'fx+fixture://docs/inline', mimeType: 'text/plain', text: 'inline text' } });
  t.same(content[5], { type: 'resource', resource: { uri: 'fx+fixture://docs/blob', mimeType: 'application/octet-stream', blob: 'AAEC' } });

  const link = await client.readResource({ uri: content[3]!.uri as string });
  t.same(link.contents, [{ uri: 'fx+fixture://docs/readme', mimeType: 'text/plain', text: 'read me first' }], 'a resource_link can be read back through the gateway');

  const toolError = await client.callTool({ name: 'fx__tool_error', arguments: {} });
  t.equal(toolError.isError, true, 'isError kept');

  const failure = await client.callTool({ name: 'fx__fail', arguments: { code: -32042 } }).then(() => undefined, (e: unknown) => e as { code: number; message: string; data: unknown });
  t.equal(failure?.code, -32042, 'backend error code preserved');
  t.match(failure?.message, /^MCP error -32042: fx: (MCP error -32042: )?deliberate failure$/, 'backend message kept, prefixed with the backend name');
  t.same(failure?.data, { detail: 'from fixture' }, 'error data preserved');

  const unknown = await client.callTool({ name: 'fx__nope', arguments: {} }).then(() => undefined, (e: unknown) => e as { code: number; message: string });
  t.equal(unknown?.code, -32602);
  t.match(unknown?.message, /Unknown tool: fx__nope/);
});

t.test('resources, templates, prompts, completion and subscriptions are prefixed and forwarded', async (t) => {
  const { mcpUrl } = await startGateway(t, {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: { providers: ['bearer'], bearer: { tokens: { [TOKEN]: { subject: 'ci', roles: ['admin'] } } } },
  });
  const client = await connectClient(t, mcpUrl, TOKEN);
  const { resources } = await client.listResources();
  t.same(resources.map((r) => r.uri).sort(), ['fx+fixture://docs/logo', 'fx+fixture://docs/readme', 'fx+fixture://secret/keys']);
  t.same(resources.find((r) => r.name === 'readme')?.annotations, { audience: ['user'], priority: 0.5 });
  const { resourceTemplates } = await client.listResourceTemplates();
  t.same(resourceTemplates.map((r) => r.uriTemplate), ['fx+fixture://items/{id}']);
  t.ok(resources.every((r) => URL.canParse(r.uri)), 'exposed resource URIs are valid URIs');
  const viaAlias = await client.readResource({ uri: 'fx__fixture://docs/readme' });
  t.same(viaAlias.contents, [{ uri: 'fx+fixture://docs/readme', mimeType: 'text/plain', text: 'read me first' }], 'the <prefix>__<uri> alias is accepted on input');
  const item = await client.readResource({ uri: 'fx+fixture://items/42' });
  t.same(item.contents, [{ uri: 'fx+fixture://items/42', mimeType: 'application/json', text: '{"id":"42"}' }], 'template resource readable');
  const logo = await client.request({ method: 'resources/read', params: { uri: 'fx+fixture://docs/logo' } }, ReadResourceResultSchema);
  t.equal((logo.contents[0] as { blob?: string }).blob?.length! > 10, true, 'blob contents kept');

  const { prompts } = await client.listPrompts();
  t.same(prompts.map((p) => p.name).sort(), ['fx__admin_prompt', 'fx__greet']);
  const greet = prompts.find((p) => p.name === 'fx__greet')!;
  t.same(greet.arguments, [{ name: 'who', description: 'Who to greet', required: true }]);
  const got = await client.getPrompt({ name: 'fx__greet', arguments: { who: 'Ada' } });
  t.same(got.messages, [{ role: 'user', content: { type: 'text', text: 'Hello, Ada!' } }]);

  const completion = await client.complete({ ref: { type: 'ref/prompt', name: 'fx__greet' }, argument: { name: 'who', value: 'al' } });
  t.same(completion.completion.values, ['alice', 'albert']);

  t.same(await client.ping(), {});

  const updates: string[] = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    updates.push(n.params.uri);
  });
  await client.subscribeResource({ uri: 'fx+fixture://docs/readme' });
  await client.callTool({ name: 'fx__touch', arguments: { uri: 'fixture://docs/readme' } });
  await waitFor('resources/updated', () => updates.length > 0);
  t.same(updates, ['fx+fixture://docs/readme'], 'update delivered with the gateway URI');
});

t.test('progress and logging reach the session that made the request; list_changed is re-announced', async (t) => {
  const { mcpUrl } = await startGateway(t, {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: { providers: ['bearer'], bearer: { tokens: { [TOKEN]: { subject: 'ci', roles: ['admin'] } } } },
  });
  const client = await connectClient(t, mcpUrl, TOKEN);
  const bystander = await connectClient(t, mcpUrl, TOKEN);
  const progress: number[] = [];
  const result = await client.callTool({ name: 'fx__slow', arguments: { ms: 300, steps: 3 } }, undefined, {
    onprogress: (p) => progress.push(p.progress),
  });
  t.match(JSON.stringify(result.content), /slept 300/);
  // The SDK client (this test's) drops a progress notification that arrives in the same read as
  // the final response, so the last step may be missing here; transport.test.ts checks the raw
  // SSE stream, where every notification must be present.
  t.same(progress, [1, 2, 3].slice(0, progress.length), 'progress notifications arrive in order with the client token');
  t.ok(progress.length >= 2, 'progress reached the client');

  const logs: string[] = [];
  const bystanderLogs: string[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(String(n.params.data));
  });
  bystander.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    bystanderLogs.push(String(n.params.data));
  });
  await client.callTool({ name: 'fx__log', arguments: { message: 'for the caller' } }, undefined, { onprogress: () => {} });
  await waitFor('log notification', () => logs.length > 0);
  t.same(logs, ['for the caller']);
  t.same(bystanderLogs, [], 'another session does not receive it');

  let changed = 0;
  bystander.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    changed++;
  });
  // The GET stream must be open for server-initiated notifications; the SDK opens it after initialize.
  await new Promise((r) => setTimeout(r, 200));
  await client.callTool({ name: 'fx__add_tool', arguments: { name: 'late_tool' } });
  await waitFor('list_changed', () => changed > 0);
  const { tools } = await bystander.listTools();
  t.ok(tools.some((tool) => tool.name === 'fx__late_tool'), 'new tool visible after list_changed');
  t.match(JSON.stringify((await bystander.callTool({ name: 'fx__late_tool', arguments: {} })).content), /ran late_tool/);
});

t.test('stdio backends get a safe environment only', async (t) => {
  process.env.GATEHOUSE_TEST_SECRET = 'must-not-leak';
  t.teardown(() => {
    delete process.env.GATEHOUSE_TEST_SECRET;
  });
  const { mcpUrl } = await startGateway(t, {
    mcpServers: { fx: fixtureStdio({ env: { OWN_SETTING: 'yes' } }), other: fixtureStdio({ env: { OTHER_SECRET: 'x' } }) },
    serverAuth: { providers: ['bearer'], bearer: { tokens: { [TOKEN]: { subject: 'ci', roles: ['admin'] } } } },
  });
  const client = await connectClient(t, mcpUrl, TOKEN);
  const result = await client.callTool({ name: 'fx__whoami', arguments: {} });
  const env = (result.structuredContent as { env: string[] }).env;
  t.ok(env.includes('OWN_SETTING'), 'own env passed');
  t.ok(env.includes('PATH'), 'PATH passed');
  t.notOk(env.includes('GATEHOUSE_TEST_SECRET'), 'gateway environment not inherited');
  t.notOk(env.includes('OTHER_SECRET'), "another backend's env not visible");
});

t.test('server-everything over Streamable HTTP behind the gateway', async (t) => {
  const { spawnListening } = await import('../helpers/gateway.js');
  const { fileURLToPath } = await import('node:url');
  const preload = fileURLToPath(new URL('../fixtures/loopback-listen.mjs', import.meta.url));
  const { port } = await spawnListening(t, process.execPath, ['--import', preload, EVERYTHING_SERVER, 'streamableHttp'], { PORT: '0' });
  const { mcpUrl } = await startGateway(t, {
    mcpServers: { everything: { url: `http://127.0.0.1:${port}/mcp`, transport: 'streamable-http' } },
    serverAuth: { providers: ['bearer'], bearer: { tokens: { [TOKEN]: { subject: 'ci', roles: ['admin'] } } } },
  });
  const client = await connectClient(t, mcpUrl, TOKEN);
  const names = (await client.listTools()).tools.map((tool) => tool.name);
  t.ok(names.includes('everything__echo'));
  t.ok(names.includes('everything__get-sum'));
  const sum = await client.callTool({ name: 'everything__get-sum', arguments: { a: 2, b: 3 } });
  t.match(JSON.stringify(sum.content), /5/);
  const structured = await client.callTool({ name: 'everything__get-structured-content', arguments: { location: 'New York' } });
  t.ok(structured.structuredContent, 'structured content arrives');
  const image = await client.callTool({ name: 'everything__get-tiny-image', arguments: {} });
  t.ok((image.content as Array<{ type: string }>).some((c) => c.type === 'image'), 'image content arrives');
  const { resources } = await client.listResources();
  t.ok(resources.length > 0 && resources.every((r) => r.uri.startsWith('everything+')), 'resources prefixed');
  const read = await client.readResource({ uri: resources[0]!.uri });
  t.equal(read.contents[0]!.uri, resources[0]!.uri, 'read returns the gateway URI');
});
