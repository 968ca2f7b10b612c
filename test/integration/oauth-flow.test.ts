import t from 'tap';
import { join } from 'node:path';
import { request } from 'undici';
import { startGateway, connectClient, fixtureStdio } from '../helpers/gateway.js';
import { freePort, HeadlessOAuthProvider, connectWithOAuth } from '../helpers/oauth.js';

const CI_TOKEN = 'oauth-flow-ci-token-00000000';

async function oauthGateway(t: { testdir(): string; teardown(fn: () => unknown): void }, extra: Record<string, unknown> = {}) {
  const port = await freePort();
  const dir = t.testdir();
  const issuer = `http://127.0.0.1:${port}`;
  const started = await startGateway(t, {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: {
      providers: ['bearer', 'oauth_as'],
      bearer: { tokens: { [CI_TOKEN]: { subject: 'ci', roles: ['admin'] } } },
      oauthAs: { issuerUrl: issuer, jwtSecret: 'test-secret-0123456789-0123456789-abcdef', injectedRoles: ['oauth-user'], ...extra },
    },
    acl: {
      default: 'deny',
      rules: [
        { roles: ['admin'], tools: ['*'], resources: ['*'], prompts: ['*'], policy: 'allow' },
        { roles: ['engineering'], tools: ['fx__echo'], policy: 'allow' },
        { roles: ['oauth-user'], tools: ['fx__structured'], policy: 'allow' },
      ],
    },
    stateStore: { type: 'file', path: join(dir, 'auth_server.json') },
  }, {}, { port });
  return { ...started, issuer, dir };
}

t.test('the SDK client completes the whole OAuth flow headlessly, refreshes, and sees what its groups allow', async (t) => {
  const { mcpUrl, issuer } = await oauthGateway(t);

  const unauthenticated = await request(mcpUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
  await unauthenticated.body.text();
  t.equal(unauthenticated.statusCode, 401);
  t.equal(unauthenticated.headers['www-authenticate'], `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp", scope="mcp"`);

  const provider = new HeadlessOAuthProvider({ user: 'ada@example.com', groups: ['engineering'] });
  const client = await connectWithOAuth(mcpUrl, provider);
  t.teardown(() => client.close());
  t.ok(provider.client?.client_id, 'registered dynamically');
  t.equal(provider.lastRedirect?.status, 302, 'authorize answered with a redirect after consent');
  const location = new URL(provider.lastRedirect!.location!);
  t.equal(location.searchParams.get('iss'), issuer, 'iss in the authorization response');
  t.ok(provider.lastAuthorizationUrl?.searchParams.get('resource'), 'the SDK sent resource');

  const tools = (await client.listTools()).tools.map((tool) => tool.name).sort();
  t.same(tools, ['fx__echo', 'fx__structured'], 'groups from the proxy plus injectedRoles decide the tools');
  const echoed = await client.callTool({ name: 'fx__echo', arguments: { text: 'via oauth' } });
  t.match(JSON.stringify(echoed.content), /via oauth/);

  // Refresh: a new access token and a rotated refresh token that both work.
  const before = provider.savedTokens!;
  const refreshed = await request(`${issuer}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: before.refresh_token!, client_id: provider.client!.client_id }).toString(),
  });
  const body = (await refreshed.body.json()) as Record<string, unknown>;
  t.equal(refreshed.statusCode, 200, JSON.stringify(body));
  t.equal(refreshed.headers['cache-control'], 'no-store');
  t.not(body.refresh_token, before.refresh_token, 'refresh token rotated');
  t.equal(body.token_type, 'Bearer');
  const after = await connectClient(t, mcpUrl, body.access_token as string);
  t.same((await after.listTools()).tools.map((tool) => tool.name).sort(), ['fx__echo', 'fx__structured'], 'the refreshed token works');

  // A static bearer token on the same instance still sees what its roles allow.
  const ci = await connectClient(t, mcpUrl, CI_TOKEN);
  t.ok((await ci.listTools()).tools.length > 5, 'the admin token sees everything');
});

t.test('discovery documents', async (t) => {
  const { url, issuer } = await oauthGateway(t);
  for (const path of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
    const res = await request(url + path);
    t.equal(res.statusCode, 200);
    t.equal(res.headers['access-control-allow-origin'], '*');
    t.same(await res.body.json(), { resource: `${issuer}/mcp`, authorization_servers: [issuer], scopes_supported: ['mcp'], bearer_methods_supported: ['header'], resource_name: 'Gatehouse MCP gateway' });
  }
  const as = await request(`${url}/.well-known/oauth-authorization-server`);
  const metadata = (await as.body.json()) as Record<string, unknown>;
  t.match(metadata, {
    issuer,
    authorization_endpoint: `${issuer}/oauth/authorize`,
    token_endpoint: `${issuer}/oauth/token`,
    registration_endpoint: `${issuer}/oauth/register`,
    revocation_endpoint: `${issuer}/oauth/revoke`,
    response_types_supported: ['code'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    code_challenge_methods_supported: ['S256'],
    scopes_supported: ['mcp'],
    client_id_metadata_document_supported: true,
    authorization_response_iss_parameter_supported: true,
  });
  t.ok((metadata.token_endpoint_auth_methods_supported as string[]).includes('none'));
  const preflight = await request(`${url}/.well-known/oauth-authorization-server`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-headers': 'mcp-protocol-version' } });
  await preflight.body.text();
  t.equal(preflight.statusCode, 204);
  t.match(String(preflight.headers['access-control-allow-headers']), /MCP-Protocol-Version/i);
});

t.test('a repeated identity header is refused, not joined into one user', async (t) => {
  const { url } = await oauthGateway(t, { clients: [{ client_id: 'pre-registered', redirect_uris: ['http://127.0.0.1:9/cb'] }], consent: 'never' });
  const { request: httpRequest } = await import('node:http');
  const query = new URLSearchParams({ response_type: 'code', client_id: 'pre-registered', redirect_uri: 'http://127.0.0.1:9/cb', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 's' });
  const send = (headers: string[]) => new Promise<{ status: number; location?: string; body: string }>((resolve, reject) => {
    // Raw header arrays keep duplicates; Node then adds no Host header of its own.
    const req = httpRequest(`${url}/oauth/authorize?${query}`, { method: 'GET', headers: ['Host', new URL(url).host, ...headers] });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, location: res.headers.location, body }));
    });
    req.on('error', reject);
    req.end();
  });
  const twice = await send(['X-Forwarded-User', 'admin', 'X-Forwarded-User', 'ada']);
  t.equal(twice.status, 400);
  t.equal(twice.location, undefined, 'no code issued');
  t.match(twice.body, /more than once/);
  const groupsTwice = await send(['X-Forwarded-User', 'ada', 'X-Forwarded-Groups', 'dev', 'x-forwarded-groups', 'admin']);
  t.equal(groupsTwice.status, 400);
  const once = await send(['X-Forwarded-User', 'ada']);
  t.equal(once.status, 302, 'a single header still works');
  t.match(once.location, /code=/);
});
