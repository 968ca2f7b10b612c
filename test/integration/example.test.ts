import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Gateway } from '../../src/app.js';
import { parseConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { ROOT, connectClient } from '../helpers/gateway.js';

t.test('servers.example.json serves its real npm backends with the example tokens', async (t) => {
  const path = join(ROOT, 'servers.example.json');
  const { config, warnings } = parseConfigText(readFileSync(path, 'utf8'), path, ROOT, { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: t.testdir() });
  t.same(warnings, [], 'the example loads without warnings');
  const gateway = await Gateway.start({ config, host: '127.0.0.1', port: 0, logger: silentLogger });
  t.teardown(() => gateway.close());
  await gateway.ready();
  t.same(gateway.backendStates(), { everything: 'ready', memory: 'ready' });

  const admin = await connectClient(t, `${gateway.url}/mcp`, 'local-dev-token-change-me');
  const names = (await admin.listTools()).tools.map((x) => x.name);
  t.ok(names.includes('everything__echo'));
  t.ok(names.includes('memory__create_entities'));
  t.notOk(names.includes('everything__get-env'), 'the example denies get-env for everyone');
  const echo = await admin.callTool({ name: 'everything__echo', arguments: { message: 'hello gateway' } });
  t.match(JSON.stringify(echo.content), /hello gateway/);
  await admin.callTool({ name: 'memory__create_entities', arguments: { entities: [{ name: 'gatehouse', entityType: 'project', observations: ['an MCP gateway'] }] } });
  const graph = await admin.callTool({ name: 'memory__read_graph', arguments: {} });
  t.match(JSON.stringify(graph), /an MCP gateway/);

  const reader = await connectClient(t, `${gateway.url}/mcp`, 'local-readonly-token-change-me');
  const readerTools = (await reader.listTools()).tools.map((x) => x.name).sort();
  t.same(readerTools, ['everything__echo', 'everything__get-sum', 'memory__read_graph', 'memory__search_nodes']);
});
