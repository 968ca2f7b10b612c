import t from 'tap';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { startGateway, connectClient, fixtureStdio } from '../helpers/gateway.js';
import { freePort, connectWithOAuth } from '../helpers/oauth.js';
import { requireSystemBinary, NGINX } from '../helpers/system.js';
import {
  EXAMPLE_CONF,
  ProxiedOAuthProvider,
  browseViaProxy,
  listen,
  nginxConfigTest,
  renderGatehouseConf,
  requestFrom,
  startAuthService,
  startNginx,
  writeNginxConfig,
} from '../helpers/nginx.js';

/**
 * A real nginx, configured from deploy/nginx/gatehouse.conf, in front of the gateway as in an
 * oauth2-proxy deployment: only /oauth/authorize is behind the login (auth_request to a stand-in for
 * oauth2-proxy's /oauth2/auth that checks HTTP Basic), identity headers are set by nginx from the
 * auth service's answer and cleared everywhere else, and the gateway trusts only 127.0.0.1, the
 * address nginx connects from (proxy_bind).
 */

const USERS = {
  ada: { password: 'ada-password', groups: ['engineering'] },
  bob: { password: 'bob-password', groups: [] },
};

const ADA = { username: 'ada', password: 'ada-password' };
const BOB = { username: 'bob', password: 'bob-password' };

const nginx = requireSystemBinary(t, NGINX);

interface Tap {
  testdir(): string;
  teardown(fn: () => unknown): void;
}

async function proxiedGateway(t: Tap) {
  const dir = t.testdir();
  const [port, gatewayPort] = [await freePort(), await freePort()];
  const auth = await startAuthService(t, USERS);
  const issuer = `http://127.0.0.1:${port}`;
  const gateway = await startGateway(t, {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: {
      providers: ['oauth_as'],
      oauthAs: {
        issuerUrl: issuer,
        jwtSecret: 'nginx-e2e-secret-0123456789-0123456789-abcdef',
        injectedRoles: ['oauth-user'],
        trustedSourceCidrs: ['127.0.0.1/32'],
      },
    },
    acl: {
      default: 'deny',
      rules: [
        { roles: ['admin'], tools: ['*'], resources: ['*'], prompts: ['*'], policy: 'allow' },
        { roles: ['engineering'], tools: ['fx__echo', 'fx__slow'], policy: 'allow' },
        { roles: ['oauth-user'], tools: ['fx__structured'], policy: 'allow' },
      ],
    },
    stateStore: { type: 'file', path: join(dir, 'auth_server.json') },
  }, {}, { port: gatewayPort });
  const proxy = await startNginx(t, nginx!, join(dir, 'nginx'), { port, gatewayPort, authPort: auth.port });
  return { issuer, proxy, auth, gateway, mcpUrl: `${proxy.url}/mcp`, gatewayPort };
}

async function toolNames(client: { listTools(): Promise<{ tools: Array<{ name: string }> }> }): Promise<string[]> {
  return (await client.listTools()).tools.map((tool) => tool.name).sort();
}

if (nginx) {
  t.test('the documented example renders and passes nginx -t', async (t) => {
    const dir = t.testdir();
    const example = readFileSync(EXAMPLE_CONF, 'utf8');
    const rendered = renderGatehouseConf({ port: 18080, gatewayPort: 18081, authPort: 18082 });
    t.equal(rendered.split('\n').length, example.split('\n').length, 'only ports were substituted');
    t.match(rendered, /listen 127\.0\.0\.1:18080;/);
    t.match(rendered, /server 127\.0\.0\.1:18081;/);
    const conf = writeNginxConfig(dir, { port: 18080, gatewayPort: 18081, authPort: 18082 });
    const output = await nginxConfigTest(nginx, dir, conf);
    t.match(output, /syntax is ok/);
    t.match(output, /test is successful/);
    // What the end-to-end tests cannot tell apart by timing (nginx 1.22 forwards small SSE writes
    // promptly even when buffering), checked on the text: streams unbuffered, long timeouts, and
    // identity headers cleared at server level.
    t.match(rendered, /location = \/mcp \{[^}]*proxy_buffering off;[^}]*proxy_read_timeout 24h;[^}]*client_max_body_size 4m;/);
    t.match(rendered, /location ~ \^\/\(sse\|messages\)\$ \{[^}]*proxy_buffering off;/);
    const serverLevel = rendered.slice(rendered.indexOf('server {'), rendered.indexOf('location = /oauth/authorize {'));
    t.match(serverLevel, /proxy_set_header X-Forwarded-User "";/);
    t.match(serverLevel, /proxy_set_header X-Forwarded-Groups "";/);
    t.throws(() => renderGatehouseConf({ port: 1, gatewayPort: 2, authPort: 3 }, example.replace('listen 80;', 'listen 8080;')), /expected exactly one "listen 80;"/, 'a drifted example is noticed');
  });

  t.test('the SDK client completes the OAuth flow through nginx, streams, refreshes, and sees what its groups allow', async (t) => {
    const { issuer, proxy, auth, mcpUrl } = await proxiedGateway(t);

    const unauthenticated = await request(mcpUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
    await unauthenticated.body.text();
    t.equal(unauthenticated.statusCode, 401, '/mcp is reachable without the proxy login, and the gateway challenges');
    t.equal(unauthenticated.headers['www-authenticate'], `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp", scope="mcp"`);

    const provider = new ProxiedOAuthProvider(ADA);
    const client = await connectWithOAuth(mcpUrl, provider);
    t.teardown(() => client.close());
    t.ok(provider.client?.client_id, 'registered through nginx without the login');
    t.equal(new URL(provider.lastAuthorizationUrl!).origin, proxy.url, 'the authorization endpoint is the nginx URL');
    t.match(provider.lastBrowse?.consentPage, /Signed in as <b>ada<\/b>/, 'the gateway saw the user the auth service vouched for');
    t.equal(provider.lastBrowse?.status, 302);
    const location = new URL(provider.lastBrowse!.location!);
    t.equal(location.searchParams.get('iss'), issuer);
    t.ok(auth.seen.some((r) => r.path === '/oauth2/auth'), 'nginx asked the auth service (auth_request)');

    t.same(await toolNames(client), ['fx__echo', 'fx__slow', 'fx__structured'], 'engineering (from the auth service) plus the injected oauth-user role');

    // A tool call answered as a server-sent event stream through nginx: progress arrives as it
    // happens, not all at once at the end.
    const started = Date.now();
    const progressAt: number[] = [];
    const slow = await client.callTool({ name: 'fx__slow', arguments: { ms: 1500, steps: 3 } }, undefined, { onprogress: () => progressAt.push(Date.now() - started) });
    const doneAt = Date.now() - started;
    t.match(JSON.stringify(slow.content), /slept 1500/);
    // (The SDK client may drop the last one, which can arrive in the same read as the result.)
    t.ok(progressAt.length >= 2, `progress notifications came through (${progressAt.length})`);
    t.ok(doneAt - progressAt[0]! >= 600, `first progress at ${progressAt[0]} ms, result at ${doneAt} ms: the stream is not buffered`);

    // Refresh through nginx (no login on /oauth/token).
    const before = provider.savedTokens!;
    const refreshed = await request(`${proxy.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: before.refresh_token!, client_id: provider.client!.client_id }).toString(),
    });
    const body = (await refreshed.body.json()) as Record<string, unknown>;
    t.equal(refreshed.statusCode, 200, `refresh through nginx${refreshed.statusCode === 200 ? '' : `: ${JSON.stringify(body)}`}`);
    t.not(body.refresh_token, before.refresh_token, 'rotated');
    const after = await connectClient(t, mcpUrl, body.access_token as string);
    t.same(await toolNames(after), ['fx__echo', 'fx__slow', 'fx__structured'], 'the refreshed token works through nginx');
  });

  t.test('identity headers sent by the client do not reach the gateway', async (t) => {
    const { proxy, mcpUrl } = await proxiedGateway(t);
    const forged = { 'x-forwarded-user': 'admin', 'x-forwarded-groups': 'admin' };

    // Not signed in at all, only forged headers: nginx shows the sign-in page; the gateway is not asked.
    const anonymous = await browseViaProxy(`${proxy.url}/oauth/authorize?client_id=whatever&response_type=code`, { extraHeaders: forged });
    t.equal(anonymous.status, 403, 'error_page 401 =403 /oauth2/sign_in');
    t.match(anonymous.body, /Sign in with your company account/);

    // Signed in as bob (no groups) but claiming to be admin: the gateway sees bob, with bob's groups.
    const provider = new ProxiedOAuthProvider({ ...BOB, extraHeaders: forged }, undefined, { client_name: 'Forging client' });
    const client = await connectWithOAuth(mcpUrl, provider);
    t.teardown(() => client.close());
    t.match(provider.lastBrowse?.consentPage, /Signed in as <b>bob<\/b>/, 'consent page names the authenticated user');
    t.notMatch(provider.lastBrowse?.consentPage, /admin/);
    t.same(await toolNames(client), ['fx__structured'], 'only the injected role: the forged admin group was dropped');
  });

  t.test('the gateway accepts the identity headers only from nginx\'s address', async (t) => {
    const { gatewayPort } = await proxiedGateway(t);
    // First prove that the client really connects from 127.0.0.2.
    const probe = createServer((req, res) => res.end(req.socket.remoteAddress));
    const probePort = await listen(probe);
    t.teardown(() => new Promise<void>((resolve) => probe.close(() => resolve())));
    t.equal((await requestFrom('127.0.0.2', `http://127.0.0.1:${probePort}/`)).body, '127.0.0.2', 'the test client connects from 127.0.0.2');

    const direct = `http://127.0.0.1:${gatewayPort}/oauth/authorize?client_id=unknown-client&response_type=code`;
    const untrusted = await requestFrom('127.0.0.2', direct, { 'x-forwarded-user': 'admin', 'x-forwarded-groups': 'admin' });
    t.equal(untrusted.status, 403, 'a peer outside trustedSourceCidrs is refused before anything else');
    t.match(untrusted.body, /trusted sign-in proxy/);
    // Control: the same request from 127.0.0.1 (where nginx connects from) passes the peer check.
    const trusted = await requestFrom('127.0.0.1', direct, { 'x-forwarded-user': 'admin' });
    t.equal(trusted.status, 400, 'from the trusted address the request reaches client validation');
    t.match(trusted.body, /not registered here/);
  });

  t.test('nginx clears identity headers on every route, sets them on /oauth/authorize, and does not buffer streams', async (t) => {
    const dir = t.testdir();
    // An upstream that records what nginx sends it, in place of the gateway.
    const seen: Array<{ method: string; path: string; headers: IncomingHttpHeaders; peer?: string; bytes: number }> = [];
    const upstream = createServer((req, res) => {
      let bytes = 0;
      req.on('data', (chunk: Buffer) => (bytes += chunk.length));
      req.on('end', () => {
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        seen.push({ method: req.method ?? '', path, headers: req.headers, peer: req.socket.remoteAddress, bytes });
        if (req.method === 'GET' && (path === '/mcp' || path === '/sse')) {
          // No X-Accel-Buffering header here (the gateway sends one; this upstream does not).
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          res.write('event: message\ndata: {"n":1}\n\n');
          setTimeout(() => res.end('event: message\ndata: {"n":2}\n\n'), 1200);
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    const upstreamPort = await listen(upstream);
    t.teardown(() => new Promise<void>((resolve) => { upstream.closeAllConnections(); upstream.close(() => resolve()); }));
    const auth = await startAuthService(t, USERS);
    const port = await freePort();
    const proxy = await startNginx(t, nginx, dir, { port, gatewayPort: upstreamPort, authPort: auth.port });

    const forged = { 'x-forwarded-user': 'admin', 'x-forwarded-groups': 'admin', 'X-Forwarded-User': 'root' };
    const routes: Array<[string, string]> = [
      ['GET', '/.well-known/oauth-authorization-server'],
      ['GET', '/.well-known/oauth-protected-resource/mcp'],
      ['POST', '/oauth/register'],
      ['POST', '/oauth/token'],
      ['POST', '/oauth/revoke'],
      ['POST', '/mcp'],
      ['DELETE', '/mcp'],
      ['POST', '/messages'],
    ];
    for (const [method, path] of routes) {
      const res = await request(proxy.url + path, { method, headers: { ...forged, 'content-type': 'application/json' }, body: method === 'GET' ? undefined : '{}' });
      await res.body.text();
      t.equal(res.statusCode, 200, `${method} ${path} is proxied without the login`);
      const got = seen.find((r) => r.method === method && r.path === path);
      t.ok(got, `${method} ${path} reached the upstream`);
      t.equal(got?.headers['x-forwarded-user'], undefined, `${method} ${path}: X-Forwarded-User cleared`);
      t.equal(got?.headers['x-forwarded-groups'], undefined, `${method} ${path}: X-Forwarded-Groups cleared`);
      t.equal(got?.peer, '127.0.0.1', `${method} ${path}: nginx connects from 127.0.0.1`);
    }

    const authorize = await request(`${proxy.url}/oauth/authorize?client_id=c`, { headers: { ...forged, authorization: `Basic ${Buffer.from('ada:ada-password').toString('base64')}` } });
    await authorize.body.text();
    t.equal(authorize.statusCode, 200);
    const got = seen.find((r) => r.path === '/oauth/authorize');
    t.equal(got?.headers['x-forwarded-user'], 'ada', 'the user comes from the auth service');
    t.equal(got?.headers['x-forwarded-groups'], 'engineering', 'the groups come from the auth service');
    const bobAuthorize = await request(`${proxy.url}/oauth/authorize?client_id=bob`, { headers: { ...forged, authorization: `Basic ${Buffer.from('bob:bob-password').toString('base64')}` } });
    await bobAuthorize.body.text();
    const bobSeen = seen.find((r) => r.path === '/oauth/authorize' && r.headers['x-forwarded-user'] === 'bob');
    t.ok(bobSeen, 'bob reached the upstream as bob');
    t.equal(bobSeen?.headers['x-forwarded-groups'], undefined, 'a user without groups: no groups header at all, not the forged one');

    const hidden = await request(`${proxy.url}/healthz`);
    await hidden.body.text();
    t.equal(hidden.statusCode, 404, 'other paths are not published');
    t.notOk(seen.some((r) => r.path === '/healthz'));

    // A 2 MiB tool call passes (the gateway's /mcp limit is 4 MiB; nginx's default would be 1 MiB).
    const large = await request(`${proxy.url}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"pad":"${'x'.repeat(2 * 1024 * 1024)}"}` });
    await large.body.text();
    t.equal(large.statusCode, 200, 'large /mcp bodies are accepted');
    t.ok(seen.some((r) => r.path === '/mcp' && r.bytes > 2 * 1024 * 1024));

    for (const path of ['/mcp', '/sse']) {
      const started = Date.now();
      const stream = await request(`${proxy.url}${path}`, { headers: { accept: 'text/event-stream' } });
      const chunks: Array<{ at: number; text: string }> = [];
      for await (const chunk of stream.body) chunks.push({ at: Date.now() - started, text: Buffer.from(chunk as Buffer).toString() });
      const all = chunks.map((c) => c.text).join('');
      t.match(all, /"n":1[\s\S]*"n":2/, `${path}: both events arrived`);
      const first = chunks.find((c) => c.text.includes('"n":1'))!;
      t.ok(first.at < 800, `${path}: the first event arrived after ${first.at} ms, before the upstream finished (1200 ms)`);
    }
  });
}
