import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { configCheckCommand } from '../../src/cli/config-check.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/configs/', import.meta.url));

async function run(options: { config?: string; json?: boolean; env?: NodeJS.ProcessEnv }): Promise<{ code: number; text: string }> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
  const code = await configCheckCommand({ ...options, out });
  return { code, text };
}

const FULL_ENV = { CI_TOKEN: 'ci-token-0123456789abcdef', SENTRY_TOKEN: 's', MCP_JWT_SECRET: 'x'.repeat(32), TOOL_SECRET: 't' };

t.test('a valid file: summary line, exit 0', async (t) => {
  const file = path.join(FIXTURES, 'valid-full.jsonc');
  const { code, text } = await run({ config: file, env: FULL_ENV });
  t.equal(code, 0);
  t.equal(text, `${file}: OK (3 backends, 0 warnings)\n`);
});

t.test('warnings only: listed, exit 0', async (t) => {
  const { code, text } = await run({ env: { MCP_SERVERS_CONFIG: '{"mcpServers": {"a": {"command": "a"}}}' } });
  t.equal(code, 0);
  t.equal(text, 'warning at /serverAuth: no authentication configured: every client is anonymous (allowed only on a loopback bind)\nMCP_SERVERS_CONFIG: OK (1 backend, 1 warning)\n');
});

t.test('errors: every problem, summary, exit 1, no secret', async (t) => {
  const file = path.join(FIXTURES, 'invalid', 'legacy-avelino.json');
  const { code, text } = await run({ config: file, env: { MCP_EXAMPLE_TOKEN: 'example-secret-token' } });
  t.equal(code, 1);
  const lines = text.trimEnd().split('\n');
  t.match(lines, [
    /^error at \/mcpServers\/grafana\/tool_acl: /,
    'error at /serverAuth/provider: "provider" is not a Gatehouse key; rename to "providers": ["bearer"] (avelino/mcp ignores the old "provider" key and runs with no authentication at all)',
    /^error at \/serverAuth\/acl: /,
    'error at /serverAuth/forwarded/header: "header" is not a Gatehouse key; rename to "userHeader"',
    'error at /serverAuth/forwarded/groups_header: "groups_header" is not a Gatehouse key; rename to "groupsHeader"',
    /^error at \/serverAuth\/bearer\/tokens\/<token #1>: /,
    'error at /serverAuth/forwarded: missing required key "trustedSourceCidrs"',
    /^warning at \/mcpServers\/example\/idle_timeout: /,
    /^warning at \/audit: /,
    /^warning at \/serverAuth\/forwarded: /,
    `${file}: 7 errors, 3 warnings`,
  ]);
  t.equal(lines.length, 11);
  t.notMatch(text, /change-me|example-secret-token/);
  t.notMatch(text, /\n\s+at /, 'no stack trace');
});

t.test('--json', async (t) => {
  const file = path.join(FIXTURES, 'invalid', 'syntax-error.jsonc');
  const { code, text } = await run({ config: file, json: true, env: {} });
  t.equal(code, 1);
  t.same(JSON.parse(text), {
    ok: false, source: file,
    errors: [{ path: '/', message: 'syntax error at line 5, column 27: comma expected' }],
    warnings: [],
  });
  const ok = await run({ config: path.join(FIXTURES, 'valid-full.jsonc'), json: true, env: FULL_ENV });
  t.equal(ok.code, 0);
  t.same(JSON.parse(ok.text), { ok: true, source: path.join(FIXTURES, 'valid-full.jsonc'), errors: [], warnings: [] });
});

t.test('no configuration and unreadable file are reported, exit 1', async (t) => {
  const none = await run({ env: {} });
  t.equal(none.code, 1);
  t.equal(none.text, 'error at /: no configuration: pass --config FILE, or set MCP_CONFIG_PATH or MCP_SERVERS_CONFIG\nMCP_SERVERS_CONFIG: 1 error, 0 warnings\n');
  const missing = await run({ config: '/nonexistent/servers.json', env: {} });
  t.equal(missing.code, 1);
  t.equal(missing.text, 'error at /: cannot read config file /nonexistent/servers.json: no such file\n/nonexistent/servers.json: 1 error, 0 warnings\n');
});
