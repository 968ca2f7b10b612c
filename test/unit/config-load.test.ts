import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError, UserError } from '../../src/errors.js';

const CONFIG = '{ // jsonc\n "mcpServers": { "a": { "command": "a", "cwd": "sub" } },\n}';

t.test('resolution order: options.path, MCP_CONFIG_PATH, MCP_SERVERS_CONFIG', async (t) => {
  const dir = t.testdir({ 'one.jsonc': CONFIG, 'two.json': '{"mcpServers": {"b": {"command": "b"}}}' });
  const one = path.join(dir, 'one.jsonc');
  const two = path.join(dir, 'two.json');
  const inline = '{"mcpServers": {"c": {"url": "https://c.example/mcp"}}}';

  const byOption = await loadConfig({ path: one, env: { MCP_CONFIG_PATH: two, MCP_SERVERS_CONFIG: inline } });
  t.equal(byOption.config.backends[0]!.name, 'a');
  t.equal(byOption.config.sourcePath, one);
  t.equal(byOption.config.baseDir, dir);
  t.equal((byOption.config.backends[0] as { cwd: string }).cwd, path.join(dir, 'sub'), 'cwd resolved against the config directory');
  t.equal(byOption.config.stateStore.path, path.join(dir, 'auth_server.json'));

  const byPathEnv = await loadConfig({ env: { MCP_CONFIG_PATH: two, MCP_SERVERS_CONFIG: inline } });
  t.equal(byPathEnv.config.backends[0]!.name, 'b');
  t.equal(byPathEnv.config.sourcePath, two);

  const byInline = await loadConfig({ env: { MCP_SERVERS_CONFIG: inline } });
  t.equal(byInline.config.backends[0]!.name, 'c');
  t.equal(byInline.config.sourcePath, undefined);
  t.equal(byInline.config.baseDir, process.cwd());
});

t.test('no configuration, unreadable file', async (t) => {
  await t.rejects(loadConfig({ env: {} }), new UserError('no configuration: pass --config FILE, or set MCP_CONFIG_PATH or MCP_SERVERS_CONFIG'));
  const dir = t.testdir({});
  await t.rejects(loadConfig({ path: path.join(dir, 'missing.json'), env: {} }), { name: 'UserError', message: /cannot read config file .*missing\.json: no such file/ });
  await t.rejects(loadConfig({ path: dir, env: {} }), { name: 'UserError', message: /is a directory/ });
});

t.test('inline config errors name MCP_SERVERS_CONFIG', async (t) => {
  const error = await loadConfig({ env: { MCP_SERVERS_CONFIG: '{"mcpServers": 1}' } }).catch((e: unknown) => e);
  t.ok(error instanceof ConfigError);
  t.equal((error as ConfigError).source, 'MCP_SERVERS_CONFIG');
  t.match((error as ConfigError).message, /^MCP_SERVERS_CONFIG: 1 configuration error\n {2}error at \/mcpServers: must be an object\n {2}warning at \/serverAuth: /);
});

t.test('empty file and non-object document', async (t) => {
  const dir = t.testdir({ 'empty.json': '', 'array.json': '[]' });
  await t.rejects(loadConfig({ path: path.join(dir, 'empty.json'), env: {} }), { name: 'ConfigError', message: /syntax error at line 1, column 1/ });
  await t.rejects(loadConfig({ path: path.join(dir, 'array.json'), env: {} }), { name: 'ConfigError', message: /must be a JSON object/ });
});
