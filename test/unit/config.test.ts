import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseConfigText } from '../../src/config/load.js';
import { ConfigError, type ConfigProblem } from '../../src/errors.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/configs/', import.meta.url));
const INVALID = path.join(FIXTURES, 'invalid');
const BASE_ENV = { CI_TOKEN: 'ci-token-0123456789abcdef' };
const FULL_ENV = {
  ...BASE_ENV,
  SENTRY_TOKEN: 'sentry-secret-token',
  MCP_JWT_SECRET: 'a-jwt-secret-that-is-long-enough-0123456789',
  TOOL_SECRET: 'tool-client-secret',
};

const read = (file: string) => readFileSync(file, 'utf8');

function problemsOf(fn: () => unknown): ConfigProblem[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

t.test('valid-full.jsonc loads with defaults applied', async (t) => {
  const file = path.join(FIXTURES, 'valid-full.jsonc');
  const { config, warnings } = parseConfigText(read(file), file, FIXTURES, FULL_ENV);
  t.equal(config.sourcePath, file);
  t.equal(config.baseDir, path.resolve(FIXTURES));
  t.same(warnings, [], 'no warnings for a complete config');

  t.equal(config.backends.length, 3);
  const [everything, sentry, minimal] = config.backends;
  t.same(everything, {
    name: 'everything', kind: 'stdio', prefix: 'everything', enabled: true, timeoutSeconds: 30,
    tools: { deny: ['*_debug'] }, sharing: 'per-session', command: 'npx',
    args: ['@modelcontextprotocol/server-everything'], env: { LOG_LEVEL: 'info' },
    cwd: path.join(FIXTURES, 'work'),
  });
  t.same(sentry, {
    name: 'sentry', kind: 'http', prefix: 'errors', enabled: true, timeoutSeconds: 60, tools: {},
    sharing: 'shared', url: 'https://mcp.sentry.dev/mcp', transport: 'streamable-http',
    headers: { Authorization: 'Bearer sentry-secret-token' },
  });
  t.match(minimal, { name: 'minimal', kind: 'http', prefix: 'minimal', enabled: false, transport: 'auto', headers: {} });

  const auth = config.serverAuth;
  t.same(auth.providers, ['bearer', 'oauth_as', 'jwks']);
  t.same(auth.bearer, { tokens: { 'ci-token-0123456789abcdef': { subject: 'ci', roles: ['admin'] } } });
  t.same(auth.jwks, { issuer: 'https://idp.example.com', audience: 'gatehouse', rolesClaim: 'groups', subjectClaim: 'sub' });
  t.equal(auth.forwarded, undefined);
  const as = auth.oauthAs!;
  t.equal(as.issuerUrl, 'https://mcp.example.com', 'trailing slash removed');
  t.equal(as.jwtSecret, FULL_ENV.MCP_JWT_SECRET);
  t.same(as.trustedSourceCidrs, ['10.0.3.0/24', '::1/128']);
  t.equal(as.trustedUserHeader, 'x-forwarded-user');
  t.equal(as.trustedGroupsHeader, 'x-forwarded-groups');
  t.same(as.injectedRoles, ['oauth-user']);
  t.same(as.scopesSupported, ['mcp']);
  t.equal(as.accessTokenTtlSeconds, 3600);
  t.equal(as.refreshTokenTtlSeconds, 2592000);
  t.equal(as.sessionMaxLifetimeSeconds, 7776000);
  t.equal(as.refreshGraceSeconds, 60);
  t.equal(as.authorizationCodeTtlSeconds, 60);
  t.equal(as.consent, 'always');
  t.same(as.registration, { enabled: true, ratePerMinute: 10, maxClients: 10000, unusedClientTtlSeconds: 86400, clientIdleTtlSeconds: 7776000 });
  t.same(as.clientIdMetadataDocuments, { enabled: true, allowPrivateAddresses: false });
  t.same(as.clients, [{
    client_id: 'internal-tool', client_name: 'Internal', redirect_uris: ['https://tool.example.com/cb'],
    client_secret: 'tool-client-secret', token_endpoint_auth_method: 'client_secret_basic',
  }]);

  t.same(config.acl, {
    default: 'deny',
    rules: [
      { roles: ['admin'], tools: ['*'], resources: ['*'], prompts: ['*'], policy: 'allow' },
      { roles: ['oauth-user'], tools: ['errors__*'], policy: 'allow' },
      { subjects: ['mallory@*'], prompts: ['*'], policy: 'deny' },
    ],
  });
  t.same(config.stateStore, { type: 'file', configured: true, keyPrefix: 'gatehouse:', path: path.join(FIXTURES, 'state/auth.json') });
  t.same(config.http, {
    allowedOrigins: ['https://app.example.com'], allowedHosts: [], mcpBodyLimitBytes: 1048576,
    oauthBodyLimitBytes: 65536, sessionIdleTimeoutSeconds: 86400, shutdownGraceSeconds: 10,
  });
  t.same(config.aggregation, { nameMaxLength: 48, startupWaitMs: 3000 });

  t.ok(Object.isFrozen(config) && Object.isFrozen(config.backends[0]) && Object.isFrozen(as.redirectUriAllowlist), 'deep-frozen');
});

t.test('a minimal config gets every default', async (t) => {
  const { config, warnings } = parseConfigText('{"mcpServers": {"a": {"command": "a"}}}', 'inline', '/srv/gw', {});
  t.same(config.serverAuth, { providers: ['none'] });
  t.same(warnings, [{ path: '/serverAuth', message: 'no authentication configured: every client is anonymous (allowed only on a loopback bind)', severity: 'warning' }]);
  t.equal(config.sourcePath, undefined, 'a non-path source has no sourcePath');
  t.same(config.backends[0], {
    name: 'a', kind: 'stdio', prefix: 'a', enabled: true, timeoutSeconds: 60, tools: {}, sharing: 'shared',
    command: 'a', args: [], env: {}, cwd: '/srv/gw',
  });
  t.equal(config.acl, undefined);
  t.same(config.stateStore, { type: 'file', configured: false, keyPrefix: 'gatehouse:', path: '/srv/gw/auth_server.json' });
  t.same(config.aggregation, { nameMaxLength: 64, startupWaitMs: 3000 });
  t.equal(config.http.mcpBodyLimitBytes, 4194304);

  const viaEnv = parseConfigText('{"mcpServers": {}}', 'inline', '/srv/gw', { MCP_AUTH_SERVER_PATH: '/var/lib/gatehouse/state.json' });
  t.equal(viaEnv.config.stateStore.path, '/var/lib/gatehouse/state.json', 'MCP_AUTH_SERVER_PATH when stateStore.path is absent');
  const redis = parseConfigText('{"mcpServers": {}, "stateStore": {"type": "redis", "url": "${REDIS_URL}"}}', 'inline', '/x', { REDIS_URL: 'redis://r:6379' });
  t.same(redis.config.stateStore, { type: 'redis', configured: true, keyPrefix: 'gatehouse:', url: 'redis://r:6379' });
});

t.test('warnings: serverAuth blocks, forwarded trust, missing acl', async (t) => {
  const { warnings } = parseConfigText(JSON.stringify({
    mcpServers: {},
    serverAuth: {
      providers: ['forwarded', 'jwks'],
      forwarded: { trustedSourceCidrs: ['10.0.0.0/8'] },
      jwks: { issuer: 'https://idp.example.com', audience: 'gw' },
      bearer: { tokens: { 'a-long-enough-token-value': { subject: 'x' } } },
    },
  }), 'inline', '/x', {});
  t.match(warnings, [
    { path: '/serverAuth/bearer', message: /"bearer" is not in "providers"/ },
    { path: '/serverAuth/forwarded', message: /trusted from 10\.0\.0\.0\/8/ },
    { path: '/acl', message: 'no acl block: every authenticated user can use every tool' },
  ]);
  t.equal(warnings.length, 3);
});

// ---------------------------------------------------------------------------------------------
// Invalid fixtures, table-driven from invalid/expected.json.

interface Expected {
  env?: Record<string, string>;
  secrets?: string[];
  problems: Array<{ path: string; message: string; severity?: 'error' | 'warning' }>;
}

const expected = JSON.parse(read(path.join(INVALID, 'expected.json'))) as Record<string, Expected | string>;

t.test('every invalid fixture has expectations', async (t) => {
  const files = readdirSync(INVALID).filter((f) => /\.jsonc?$/.test(f) && f !== 'expected.json');
  t.same(files.sort(), Object.keys(expected).filter((k) => !k.startsWith('$')).sort());
});

for (const [file, spec] of Object.entries(expected)) {
  if (typeof spec === 'string') continue;
  t.test(`invalid/${file}`, async (t) => {
    const fullPath = path.join(INVALID, file);
    const text = read(fullPath);
    const problems = problemsOf(() => parseConfigText(text, fullPath, INVALID, { ...BASE_ENV, ...spec.env }));
    for (const want of spec.problems) {
      const severity = want.severity ?? 'error';
      const hit = problems.find((p) => p.path === want.path && p.severity === severity && new RegExp(want.message).test(p.message));
      t.ok(hit, `${severity} at ${want.path || '/'} matching /${want.message}/`, { found: problems });
    }
    const errors = problems.filter((p) => p.severity === 'error');
    t.equal(errors.length, spec.problems.filter((p) => (p.severity ?? 'error') === 'error').length, 'no unexpected errors', { found: errors });
    const printed = JSON.stringify(problems);
    for (const secret of [...(spec.secrets ?? []), ...Object.values(BASE_ENV)]) {
      t.notOk(printed.includes(secret), 'no secret value in any message or path');
    }
  });
}

t.test('a file with several problems reports all of them at once', async (t) => {
  const problems = problemsOf(() => parseConfigText(read(path.join(INVALID, 'many-problems.jsonc')), 'x', INVALID, BASE_ENV));
  t.ok(problems.filter((p) => p.severity === 'error').length >= 10);
  const error = (() => { try { parseConfigText(read(path.join(INVALID, 'many-problems.jsonc')), 'many.jsonc', INVALID, BASE_ENV); } catch (e) { return e as ConfigError; } })()!;
  t.match(error.message, /^many\.jsonc: 12 configuration errors\n {2}error at \/acl: duplicate key/);
});

t.test('the short jwtSecret is never printed, even when written literally', async (t) => {
  const text = JSON.stringify({ mcpServers: {}, serverAuth: { providers: ['oauth_as'], oauthAs: { issuerUrl: 'https://a.example', jwtSecret: 'hunter2-literal' } }, acl: {} });
  const problems = problemsOf(() => parseConfigText(text, 'x', '/', {}));
  t.match(problems, [{ path: '/serverAuth/oauthAs/jwtSecret', message: /at least 32 bytes, got 15/ }]);
  t.notOk(JSON.stringify(problems).includes('hunter2'));
});

t.test('literal bearer tokens never appear in paths', async (t) => {
  const text = JSON.stringify({ mcpServers: {}, serverAuth: { bearer: { tokens: { 'first-literal-token-123': { subject: 'a' }, 'second-literal-token-456': { roles: 'x' } } } } });
  const problems = problemsOf(() => parseConfigText(text, 'x', '/', {}));
  t.match(problems, [
    { path: '/serverAuth/bearer/tokens/<token #2>', message: 'missing required key "subject"' },
    { path: '/serverAuth/bearer/tokens/<token #2>/roles', message: 'must be an array' },
  ]);
  t.notOk(JSON.stringify(problems).includes('literal-token'));
});

t.test('stdio keys on a remote backend and vice versa', async (t) => {
  const text = JSON.stringify({ mcpServers: { r: { url: 'https://x.example/mcp', cwd: '/tmp' }, s: { command: 'x', transport: 'sse' } } });
  t.match(problemsOf(() => parseConfigText(text, 'x', '/', {})), [
    { path: '/mcpServers/r/cwd', message: '"cwd" only applies to stdio backends (with "command")' },
    { path: '/mcpServers/s/transport', message: '"transport" only applies to remote backends (with "url")' },
  ]);
});
