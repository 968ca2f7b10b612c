import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { request } from 'undici';
import { Gateway } from '../../src/app.js';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { connectClient, fixtureStdio } from '../helpers/gateway.js';
import { freePort, HeadlessOAuthProvider, connectWithOAuth } from '../helpers/oauth.js';

const CI_TOKEN = 'observability-ci-token-5d2c9e71';
const CI_SUBJECT = 'ci-operator-7f3a';
const METRICS_TOKEN = 'metrics-scrape-token-0b8e44aa19';
const JWT_SECRET = 'observability-secret-0123456789-abcdefghij';
const ARGUMENT = 'argument-value-never-logged-4c1d';
const DENIED_ARGUMENT = 'denied-argument-never-logged-9e2f';
const ADA = 'ada.lovelace@example.com';
const BOB = 'bob.babbage@example.com';

/** `name{labels} value` lines of the exposition format, keyed by `name{labels}` exactly as printed. */
function parseExposition(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const split = line.lastIndexOf(' ');
    series.set(line.slice(0, split), Number(line.slice(split + 1)));
  }
  return series;
}

/** Every label value of every series. */
function labelValues(series: Map<string, number>): string[] {
  const values: string[] = [];
  for (const key of series.keys()) {
    for (const match of key.matchAll(/[a-zA-Z_]+="((?:[^"\\]|\\.)*)"/g)) values.push(match[1]!);
  }
  return values;
}

function lines(text: string): Array<Record<string, unknown>> {
  return text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function post(url: string, form: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

t.test('metrics, audit log and request logs over real traffic', async (t) => {
  const port = await freePort();
  const dir = t.testdir();
  const issuer = `http://127.0.0.1:${port}`;
  const auditPath = join(dir, 'audit', 'audit.log');
  const doc = {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: {
      providers: ['bearer', 'oauth_as'],
      bearer: { tokens: { [CI_TOKEN]: { subject: CI_SUBJECT, roles: ['admin'] } } },
      oauthAs: { issuerUrl: issuer, jwtSecret: JWT_SECRET, injectedRoles: ['oauth-user'] },
    },
    acl: {
      default: 'deny',
      rules: [
        { roles: ['admin'], tools: ['*'], policy: 'allow' },
        { roles: ['oauth-user'], tools: ['fx__echo'], policy: 'deny' },
        { roles: ['oauth-user'], tools: ['fx__structured'], policy: 'allow' },
      ],
    },
    stateStore: { type: 'file', path: join(dir, 'auth_server.json') },
    observability: { metrics: { bearerToken: '${METRICS_TOKEN}' }, audit: { destination: 'file', path: 'audit/audit.log' } },
  };
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, METRICS_TOKEN };
  const { config } = parseConfigText(JSON.stringify(doc), 'observability servers.json', dir, env);
  t.equal(config.observability.audit.path, auditPath, 'the audit path is resolved against the config directory');
  let logText = '';
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logText += chunk.toString();
      callback();
    },
  });
  const gateway = await Gateway.start({ config, host: '127.0.0.1', port, logger: createLogger({ level: 'info', destination }), env });
  let closed = false;
  t.teardown(() => (closed ? undefined : gateway.close()));
  await gateway.ready();
  const mcpUrl = `${issuer}/mcp`;

  // OAuth: registration, authorize + consent, code exchange; then tool calls as that client.
  const ada = new HeadlessOAuthProvider({ user: ADA, groups: ['engineering'] });
  const adaClient = await connectWithOAuth(mcpUrl, ada);
  t.teardown(() => adaClient.close());
  const adaClientId = ada.client!.client_id;
  const firstTokens = ada.savedTokens!;
  t.ok((await adaClient.callTool({ name: 'fx__structured', arguments: {} })).structuredContent, 'allowed call');
  await t.rejects(adaClient.callTool({ name: 'fx__echo', arguments: { text: DENIED_ARGUMENT } }), /Unknown tool/, 'denied by acl.rules[1]');
  await t.rejects(adaClient.callTool({ name: 'fx__nope', arguments: {} }), /Unknown tool/, 'unknown tool');

  // Static bearer token: ok, tool error, backend error.
  const ci = await connectClient(t, mcpUrl, CI_TOKEN);
  t.match(JSON.stringify((await ci.callTool({ name: 'fx__echo', arguments: { text: ARGUMENT } })).content), ARGUMENT);
  t.equal((await ci.callTool({ name: 'fx__tool_error', arguments: {} })).isError, true);
  await t.rejects(ci.callTool({ name: 'fx__fail', arguments: {} }));

  // A failed authentication.
  const refused = await request(mcpUrl, { method: 'POST', headers: { authorization: 'Bearer not-a-valid-token-123456', 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
  await refused.body.text();
  t.equal(refused.statusCode, 401);

  // Refresh: rotated, grace (the previous token within the window), rotated, reuse (family revoked), invalid.
  const token = `${issuer}/oauth/token`;
  const refresh = (refreshToken: string) => post(token, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: adaClientId });
  const r1 = await refresh(firstTokens.refresh_token!);
  t.equal(r1.status, 200);
  const grace = await refresh(firstTokens.refresh_token!);
  t.equal(grace.status, 200, 'grace');
  const r2 = await refresh(r1.body.refresh_token as string);
  t.equal(r2.status, 200);
  const reuse = await refresh(firstTokens.refresh_token!);
  t.equal(reuse.status, 400, 'reuse of an old generation');
  t.equal((await refresh('garbage-refresh-token')).status, 400);

  // Revocation: a live session (a second user), and a token whose family is gone.
  const bob = new HeadlessOAuthProvider({ user: BOB, groups: [] });
  const bobClient = await connectWithOAuth(mcpUrl, bob);
  t.teardown(() => bobClient.close());
  t.equal((await post(`${issuer}/oauth/revoke`, { token: bob.savedTokens!.refresh_token!, client_id: bob.client!.client_id })).status, 200);
  t.equal((await post(`${issuer}/oauth/revoke`, { token: r2.body.refresh_token as string, client_id: adaClientId })).status, 200);

  // Other routes: a probe, discovery, an unknown path with a query string.
  await (await request(`${issuer}/healthz`)).body.text();
  await (await request(`${issuer}/nope?access_token=query-secret-value-77`)).body.text();

  // /metrics: 401 without or with a wrong token, 200 with it.
  const bare = await request(`${issuer}/metrics`);
  await bare.body.text();
  t.equal(bare.statusCode, 401);
  t.match(String(bare.headers['www-authenticate']), /^Bearer/);
  const wrong = await request(`${issuer}/metrics`, { headers: { authorization: 'Bearer metrics-scrape-token-0b8e44aa18' } });
  await wrong.body.text();
  t.equal(wrong.statusCode, 401);
  const scrape = await request(`${issuer}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  const exposition = await scrape.body.text();
  t.equal(scrape.statusCode, 200);
  t.match(String(scrape.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const series = parseExposition(exposition);
  const value = (key: string) => series.get(key);

  t.equal(value('gatehouse_tool_calls_total{backend="fx",outcome="ok"}'), 2);
  t.equal(value('gatehouse_tool_calls_total{backend="fx",outcome="tool_error"}'), 1);
  t.equal(value('gatehouse_tool_calls_total{backend="fx",outcome="error"}'), 1);
  t.equal(value('gatehouse_tool_calls_total{backend="fx",outcome="denied"}'), 1);
  t.equal(value('gatehouse_tool_calls_total{backend="",outcome="unknown"}'), 1);
  t.equal(value('gatehouse_backend_request_duration_seconds_count{backend="fx",method="tools/call"}'), 4, 'only forwarded calls are timed');
  t.ok(value('gatehouse_backend_request_duration_seconds_bucket{le="+Inf",backend="fx",method="tools/call"}') === 4, 'histogram buckets');
  t.equal(value('gatehouse_backend_up{backend="fx"}'), 1);
  t.ok(value('gatehouse_mcp_sessions')! >= 2, 'live sessions');

  t.equal(value('gatehouse_oauth_tokens_total{grant="authorization_code",outcome="issued"}'), 2);
  t.equal(value('gatehouse_oauth_tokens_total{grant="refresh_token",outcome="rotated"}'), 2);
  t.equal(value('gatehouse_oauth_tokens_total{grant="refresh_token",outcome="grace"}'), 1);
  t.equal(value('gatehouse_oauth_tokens_total{grant="refresh_token",outcome="reuse"}'), 1);
  t.equal(value('gatehouse_oauth_tokens_total{grant="refresh_token",outcome="invalid"}'), 1);
  t.equal(value('gatehouse_oauth_tokens_total{grant="revocation",outcome="revoked"}'), 1);
  t.equal(value('gatehouse_oauth_tokens_total{grant="revocation",outcome="not_found"}'), 1);

  t.ok(value('gatehouse_state_store_write_duration_seconds_count{store="file"}')! > 0, 'file flushes timed');
  t.ok(value('gatehouse_http_requests_total{route="/mcp",method="POST",status="200"}')! > 5);
  t.equal(value('gatehouse_http_requests_total{route="/mcp",method="POST",status="401"}'), 3, 'the refused token and the two SDK discovery attempts');
  t.ok(value('gatehouse_http_requests_total{route="/oauth/token",method="POST",status="200"}')! >= 5);
  t.equal(value('gatehouse_http_requests_total{route="/oauth/token",method="POST",status="400"}'), 2);
  t.equal(value('gatehouse_http_requests_total{route="/oauth/register",method="POST",status="201"}'), 2);
  t.ok(value('gatehouse_http_requests_total{route="/oauth/authorize",method="GET",status="200"}')! >= 2, 'consent pages');
  t.equal(value('gatehouse_http_requests_total{route="/oauth/revoke",method="POST",status="200"}'), 2);
  t.ok(value('gatehouse_http_requests_total{route="/.well-known",method="GET",status="200"}')! >= 2);
  t.equal(value('gatehouse_http_requests_total{route="/healthz",method="GET",status="200"}'), 1);
  t.equal(value('gatehouse_http_requests_total{route="other",method="GET",status="404"}'), 1);
  t.equal(value('gatehouse_http_requests_total{route="/metrics",method="GET",status="401"}'), 2);
  t.ok(value('gatehouse_http_request_duration_seconds_count{route="/mcp",method="POST"}')! > 5);
  t.ok(value('gatehouse_http_request_duration_seconds_bucket{le="0.005",route="/healthz",method="GET"}') !== undefined, 'latency buckets');
  t.ok(series.has('process_cpu_user_seconds_total'), 'default process metrics');
  t.ok(series.has('nodejs_heap_size_used_bytes'));

  const routes = new Set<string>();
  for (const key of series.keys()) {
    const route = /route="([^"]*)"/.exec(key)?.[1];
    if (route !== undefined) routes.add(route);
  }
  t.same([...routes].sort(), ['/.well-known', '/healthz', '/mcp', '/metrics', '/oauth/authorize', '/oauth/register', '/oauth/revoke', '/oauth/token', 'other'], 'routes are the bounded set, never raw paths');

  const secrets = [
    CI_TOKEN, METRICS_TOKEN, JWT_SECRET, ARGUMENT, DENIED_ARGUMENT, 'query-secret-value-77', 'not-a-valid-token-123456',
    firstTokens.access_token, firstTokens.refresh_token!, r1.body.refresh_token as string, r1.body.access_token as string,
    r2.body.refresh_token as string, bob.savedTokens!.access_token, bob.savedTokens!.refresh_token!,
    ada.authorizationCode!, bob.authorizationCode!, ada.verifier!, bob.verifier!,
    ada.lastAuthorizationUrl!.searchParams.get('code_challenge')!,
  ];
  const identities = [CI_SUBJECT, ADA, BOB, adaClientId, bob.client!.client_id];
  for (const label of labelValues(series)) {
    for (const forbidden of [...identities, ...secrets]) {
      if (label.includes(forbidden)) t.fail(`label value ${JSON.stringify(label)} contains an identity or a secret`);
    }
  }
  t.notOk(identities.some((id) => exposition.includes(id)), 'no identity anywhere in /metrics');

  await gateway.close();
  closed = true;

  // The audit file: mode 0600, JSON lines, the expected events.
  t.equal(statSync(auditPath).mode & 0o777, 0o600);
  const auditText = readFileSync(auditPath, 'utf8');
  const audit = lines(auditText);
  t.ok(audit.every((line) => line.audit === true && typeof line.event === 'string' && typeof line.time === 'string'), 'every line is an audit event');
  t.notOk(lines(logText).some((line) => line.audit), 'audit events go to the file, not the log stream');
  const find = (pattern: Record<string, unknown>) => audit.find((line) => Object.entries(pattern).every(([k, v]) => line[k] === v));

  t.match(find({ event: 'auth', decision: 'allow', provider: 'oauth_as' }), { subject: ADA, clientId: adaClientId });
  t.match(find({ event: 'auth', decision: 'allow', provider: 'bearer' }), { subject: CI_SUBJECT });
  t.match(find({ event: 'auth', decision: 'deny' }), { reason: String });
  t.match(find({ event: 'acl', decision: 'allow', tool: 'structured' }), { kind: 'tool', name: 'fx__structured', backend: 'fx', subject: ADA, clientId: adaClientId, rule: 'rules[2]' });
  t.match(find({ event: 'acl', decision: 'deny', name: 'fx__echo' }), { kind: 'tool', backend: 'fx', tool: 'echo', subject: ADA, clientId: adaClientId, rule: 'rules[1]' });
  t.match(find({ event: 'acl', decision: 'deny', name: 'fx__nope' }), { rule: 'unknown', subject: ADA });
  t.match(find({ event: 'tool_call', tool: 'structured' }), { subject: ADA, clientId: adaClientId, backend: 'fx', decision: 'allow', rule: 'rules[2]', outcome: 'ok', durationMs: Number });
  t.match(find({ event: 'tool_call', tool: 'echo', subject: CI_SUBJECT }), { backend: 'fx', decision: 'allow', rule: 'rules[0]', outcome: 'ok' });
  t.match(find({ event: 'tool_call', tool: 'echo', subject: ADA }), { decision: 'deny', rule: 'rules[1]', outcome: 'denied' });
  t.match(find({ event: 'tool_call', outcome: 'unknown' }), { name: 'fx__nope', decision: 'deny' });
  t.ok(find({ event: 'tool_call', tool: 'tool_error', outcome: 'tool_error' }));
  t.ok(find({ event: 'tool_call', tool: 'fail', outcome: 'error' }));
  t.match(find({ event: 'consent', decision: 'allow', subject: ADA }), { clientId: adaClientId });
  t.match(find({ event: 'authorize', decision: 'allow', subject: ADA }), { clientId: adaClientId });
  t.match(find({ event: 'token', grant: 'authorization_code', subject: ADA }), { outcome: 'issued', decision: 'allow', clientId: adaClientId });
  t.ok(find({ event: 'token', grant: 'refresh_token', outcome: 'rotated' }));
  t.ok(find({ event: 'token', grant: 'refresh_token', outcome: 'grace' }));
  t.match(find({ event: 'token', outcome: 'reuse' }), { decision: 'deny', subject: ADA, clientId: adaClientId });
  t.match(find({ event: 'revoke', subject: BOB }), { outcome: 'revoked', clientId: bob.client!.client_id });

  // The request log: one line per request, with the identity and, for tools/call, the backend and tool.
  const logs = lines(logText);
  const requests = logs.filter((line) => line.msg === 'request');
  t.match(requests.find((line) => line.tool === 'structured'), { method: 'POST', path: '/mcp', status: 200, durationMs: Number, subject: ADA, clientId: adaClientId, backend: 'fx' });
  t.match(requests.find((line) => line.tool === 'echo' && line.subject === CI_SUBJECT), { backend: 'fx', status: 200 });
  const durations = logText.split('\n').filter((line) => line.includes('"msg":"request"')).map((line) => /"durationMs":([^,}]*)/.exec(line)?.[1]);
  t.ok(durations.length > 0 && durations.every((d) => d !== undefined && /^\d+(\.\d{1,3})?$/.test(d)), 'request durations are written to the microsecond');
  t.ok(requests.some((line) => line.path === '/oauth/authorize'), 'authorize requests are logged');
  t.notOk(requests.some((line) => String(line.path).includes('?')), 'no query string in any logged path');
  t.notOk(requests.some((line) => line.path === '/healthz' || (line.path === '/metrics' && line.status === 200)), 'probes and scrapes are not logged');
  t.ok(requests.some((line) => line.path === '/metrics' && line.status === 401), 'refused scrapes are');

  for (const secret of secrets) {
    if (logText.includes(secret)) t.fail(`the log contains a secret (${secret.slice(0, 12)}…)`);
    if (auditText.includes(secret)) t.fail(`the audit log contains a secret (${secret.slice(0, 12)}…)`);
  }
});

t.test('metrics disabled: /metrics is 404; open when no bearer token is set', async (t) => {
  const start = async (metrics: Record<string, unknown>) => {
    const { config } = parseConfigText(JSON.stringify({ mcpServers: {}, observability: { metrics } }), 'servers.json', t.testdir(), {});
    const gateway = await Gateway.start({ config, host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }) });
    t.teardown(() => gateway.close());
    return gateway;
  };
  const off = await start({ enabled: false });
  const res = await request(`${off.url}/metrics`);
  await res.body.text();
  t.equal(res.statusCode, 404);
  const open = await start({});
  const scrape = await request(`${open.url}/metrics`);
  t.equal(scrape.statusCode, 200);
  t.match(await scrape.body.text(), /# TYPE gatehouse_http_requests_total counter/);
  const head = await request(`${open.url}/metrics`, { method: 'POST' });
  await head.body.text();
  t.equal(head.statusCode, 405);
});

t.test('config: file destination needs a path', async (t) => {
  t.throws(() => parseConfigText(JSON.stringify({ mcpServers: {}, observability: { audit: { destination: 'file' } } }), 'servers.json', t.testdir(), {}), /observability\/audit/);
  const { warnings } = parseConfigText(JSON.stringify({ mcpServers: {}, observability: { audit: { path: 'x.log' }, metrics: { bearerToken: 'short' } } }), 'servers.json', t.testdir(), {});
  t.same(warnings.map((w) => w.path).filter((p) => p.startsWith('/observability')).sort(), ['/observability/audit/path', '/observability/metrics/bearerToken']);
  const { config } = parseConfigText(JSON.stringify({ mcpServers: {} }), 'servers.json', t.testdir(), {});
  t.same(config.observability, { metrics: { enabled: true }, audit: { destination: 'stderr' } }, 'defaults');
});
