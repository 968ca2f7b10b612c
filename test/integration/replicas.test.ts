import t from 'tap';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURE_SERVER, connectClient, waitFor } from '../helpers/gateway.js';
import { serveCli } from '../helpers/cli.js';
import { freePort, HeadlessOAuthProvider, connectWithOAuth } from '../helpers/oauth.js';
import { authorize, bearer, exchange, probeMcp, refresh, registerClient, waitUntilRefused } from '../helpers/oauth-as.js';
import { startRedis } from '../helpers/redis.js';

const ADMIN = 'replicas-admin-token-000000000';
const SECRET = 'replicas-shared-secret-0123456789-0123456789';

interface Tap {
  teardown(fn: () => void | Promise<void>): void;
  testdir(): string;
  passing(): boolean;
  comment(...message: unknown[]): void;
}

/** A tiny loopback round-robin load balancer; counts which replica served each path. */
async function roundRobin(t: Tap, upstreams: number[]): Promise<{ url: string; served: Array<{ replica: number; path: string }> }> {
  let next = 0;
  const served: Array<{ replica: number; path: string }> = [];
  const server: Server = createServer((req, res) => {
    const replica = next++ % upstreams.length;
    served.push({ replica, path: (req.url ?? '').split('?')[0]! });
    const upstream = httpRequest({ host: '127.0.0.1', port: upstreams[replica], method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.end();
    });
    req.pipe(upstream);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${port}`, served };
}

/** Runs `mcp serve` as its own process; resolves once it is ready. */
async function replica(t: Tap, configPath: string, port: number): Promise<void> {
  const { lines } = await serveCli(t, configPath, `127.0.0.1:${port}`);
  t.teardown(() => {
    // The replica's own account of what happened, when something failed (backend start, store...).
    if (!t.passing()) t.comment(`replica on ${port}:\n${lines.filter((line) => line.msg !== 'request').slice(-40).map((line) => JSON.stringify(line)).join('\n')}`);
  });
  // As a load balancer's readiness probe would: traffic only once the backends have started.
  await waitFor(`replica on ${port} ready`, async () => {
    const answer = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    return answer?.status === 200;
  }, 30_000);
}

async function haSetup(t: Tap, redisUrl: string, extra: Record<string, unknown> = {}) {
  const [portA, portB] = [await freePort(), await freePort()];
  const lb = await roundRobin(t, [portA, portB]);
  const configPath = join(t.testdir(), 'servers.json');
  writeFileSync(configPath, JSON.stringify({
    mcpServers: { fx: { command: process.execPath, args: [FIXTURE_SERVER, 'stdio'] } },
    serverAuth: {
      providers: ['bearer', 'oauth_as'],
      bearer: { tokens: { [ADMIN]: { subject: 'root', roles: ['admin'] } } },
      oauthAs: { issuerUrl: lb.url, jwtSecret: SECRET, injectedRoles: ['oauth-user'], refreshGraceSeconds: 2, ...extra },
    },
    acl: {
      default: 'deny',
      rules: [
        { roles: ['admin'], tools: ['*'], policy: 'allow' },
        { roles: ['engineering'], tools: ['fx__echo'], policy: 'allow' },
        { roles: ['oauth-user'], tools: ['fx__structured'], policy: 'allow' },
      ],
    },
    stateStore: { type: 'redis', url: redisUrl, keyPrefix: 'ha:' },
  }));
  await Promise.all([replica(t, configPath, portA), replica(t, configPath, portB)]);
  return { lb, a: `http://127.0.0.1:${portA}`, b: `http://127.0.0.1:${portB}` };
}

t.test('two replicas on one Redis behave as one gateway', async (t) => {
  const redis = await startRedis(t, { persistent: true });
  if (!redis) return;
  const { lb, a, b } = await haSetup(t, redis.url);
  const issuer = lb.url;

  await t.test('the SDK client completes the OAuth flow through a round-robin balancer', async (t) => {
    const provider = new HeadlessOAuthProvider({ user: 'ada@example.com', groups: ['engineering'] });
    const client = await connectWithOAuth(`${issuer}/mcp`, provider);
    t.teardown(() => client.close());
    const tools = (await client.listTools()).tools.map((tool) => tool.name).sort();
    t.same(tools, ['fx__echo', 'fx__structured']);
    for (let i = 0; i < 4; i++) {
      const result = await client.callTool({ name: 'fx__echo', arguments: { text: `call ${i}` } });
      t.match(JSON.stringify(result.content), new RegExp(`call ${i}`), `call ${i} answered (session shared by both replicas)`);
    }
    const replicasFor = (prefix: string) => new Set(lb.served.filter((s) => s.path.startsWith(prefix)).map((s) => s.replica));
    t.same([...replicasFor('/mcp')].sort(), [0, 1], '/mcp requests landed on both replicas');
    t.same([...replicasFor('/oauth/')].sort(), [0, 1], 'OAuth requests landed on both replicas');
  });

  await t.test('register on A, authorize on B, exchange on A, call tools on B, refresh on A', async (t) => {
    const clientId = await registerClient(a);
    const auth = await authorize(b, clientId, { params: { resource: `${issuer}/mcp` } });
    t.ok(auth.code, `authorized on B: ${auth.status}`);
    t.equal(auth.location?.searchParams.get('iss'), issuer);
    const tokens = await exchange(a, clientId, auth.code!, auth.verifier);
    t.equal(tokens.status, 200, tokens.text);
    const onB = await connectClient(t, `${b}/mcp`, tokens.json.access_token as string);
    t.same((await onB.listTools()).tools.map((x) => x.name).sort(), ['fx__echo', 'fx__structured']);
    const refreshed = await refresh(a, clientId, tokens.json.refresh_token as string);
    t.equal(refreshed.status, 200, refreshed.text);
    t.equal((await probeMcp(`${b}/mcp`, bearer(refreshed.json.access_token as string))).status, 200, 'the refreshed token works on B');
  });

  await t.test('50 concurrent refreshes of one token across both replicas: exactly one successor', async (t) => {
    const clientId = await registerClient(a, { client_name: 'race' });
    const auth = await authorize(a, clientId, { params: { resource: `${issuer}/mcp` } });
    const tokens = await exchange(b, clientId, auth.code!, auth.verifier);
    const original = tokens.json.refresh_token as string;
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => refresh(i % 2 ? a : b, clientId, original)));
    t.same([...new Set(answers.map((x) => x.status))], [200], 'every racing refresh is answered (the losers inside the grace window)');
    const successors = new Set(answers.map((x) => x.json.refresh_token));
    t.equal(successors.size, 1, 'exactly one successor refresh token');
    const successor = [...successors][0] as string;
    t.not(successor, original);

    // After the grace window, replaying the original revokes the family on every replica.
    await new Promise((r) => setTimeout(r, 2500));
    const replay = await refresh(b, clientId, original);
    t.equal(replay.status, 400);
    t.equal(replay.json.error, 'invalid_grant');
    const successorNow = await refresh(a, clientId, successor);
    t.equal(successorNow.status, 400, 'the successor is revoked too, on the other replica');
    const access = answers[0]!.json.access_token as string;
    t.equal((await waitUntilRefused(`${a}/mcp`, access)).status, 401, 'its access tokens stop working on A');
    t.equal((await waitUntilRefused(`${b}/mcp`, access)).status, 401, 'and on B');
  });

  await t.test('a session terminated on one replica is gone on the other', async (t) => {
    const onA = await connectClient(t, `${a}/mcp`, ADMIN);
    const transport = onA.transport as unknown as { sessionId?: string; terminateSession(): Promise<void> };
    const sessionId = transport.sessionId!;
    const ping = (url: string) => fetch(`${url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    t.equal((await ping(b)).status, 200, 'B takes the session over');
    await transport.terminateSession();
    t.equal((await ping(a)).status, 404, 'A: terminated');
    await waitFor('B sees the termination', async () => (await ping(b)).status === 404, 5000);
    t.pass('B: terminated within seconds');
  });

  await t.test('an admin revocation on one replica bites on the other within a second', async (t) => {
    const clientId = await registerClient(a, { client_name: 'admin-revoke' });
    const auth = await authorize(a, clientId, { params: { resource: `${issuer}/mcp` }, identity: { user: 'grace@example.com', groups: ['engineering'] } });
    const tokens = await exchange(a, clientId, auth.code!, auth.verifier);
    const access = tokens.json.access_token as string;
    t.equal((await probeMcp(`${b}/mcp`, bearer(access))).status, 200, 'the token works on B');
    const sessions = await fetch(`${a}/admin/api/sessions?subject=${encodeURIComponent('grace@example.com')}`, { headers: bearer(ADMIN) });
    const listed = (await sessions.json()) as { sessions: Array<{ sid: string }> } | Array<{ sid: string }>;
    const rows = Array.isArray(listed) ? listed : listed.sessions;
    t.equal(rows.length, 1, 'the admin API on A lists the session');
    const revoked = await fetch(`${a}/admin/api/sessions/${encodeURIComponent(rows[0]!.sid)}`, { method: 'DELETE', headers: bearer(ADMIN) });
    t.ok(revoked.ok, `revoked on A (${revoked.status})`);
    const started = Date.now();
    const refused = await waitUntilRefused(`${b}/mcp`, access, 5000);
    const elapsed = Date.now() - started;
    t.equal(refused.status, 401, 'refused on B');
    t.ok(elapsed < 1500, `within about a second (${elapsed} ms)`);
    t.equal((await refresh(b, clientId, tokens.json.refresh_token as string)).status, 400, 'its refresh token is refused on B');
  });

  await t.test('Redis killed and restarted during traffic', async (t) => {
    const clientId = await registerClient(a, { client_name: 'outage' });
    const auth = await authorize(b, clientId, { params: { resource: `${issuer}/mcp` } });
    const first = await exchange(a, clientId, auth.code!, auth.verifier);
    let refreshToken = first.json.refresh_token as string;
    const access = first.json.access_token as string;
    const registered: string[] = [];
    let stop = false;
    const mcpStatuses: number[] = [];
    const oauthStatuses: number[] = [];
    const traffic = (async () => {
      for (let i = 0; !stop; i++) {
        const replicaUrl = i % 2 ? a : b;
        mcpStatuses.push((await probeMcp(`${replicaUrl}/mcp`, bearer(access))).status);
        const reg = await fetch(`${replicaUrl}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: `outage-${i}`, redirect_uris: ['http://127.0.0.1:43210/callback'] }) });
        oauthStatuses.push(reg.status);
        if (reg.status === 201) registered.push(((await reg.json()) as { client_id: string }).client_id);
        else await reg.body?.cancel();
        const next = await refresh(replicaUrl, clientId, refreshToken);
        if (next.status === 200) refreshToken = next.json.refresh_token as string;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await waitFor('some traffic', () => registered.length >= 3);
    await redis.stop({ hard: true });
    const during = oauthStatuses.length;
    await waitFor('503s while Redis is down', () => oauthStatuses.slice(during).includes(503), 10_000);
    const mcpDuring = mcpStatuses.length;
    await waitFor('JWT calls during the outage', () => mcpStatuses.length >= mcpDuring + 3, 10_000);
    t.same([...new Set(mcpStatuses.slice(mcpDuring))], [200], '/mcp with a valid JWT keeps working while Redis is down');
    await redis.restart();
    const after = oauthStatuses.length;
    await waitFor('OAuth endpoints recover', () => oauthStatuses.slice(after).includes(201), 20_000);
    stop = true;
    await traffic;
    t.ok(oauthStatuses.includes(503), 'OAuth endpoints answered 503 during the outage');
    for (const id of registered) {
      const authorized = await authorize(a, id, { params: { resource: `${issuer}/mcp` } });
      if (!authorized.code) {
        t.fail(`acknowledged registration ${id} lost (${authorized.status})`);
        return;
      }
    }
    t.pass(`all ${registered.length} acknowledged registrations survived`);
    const last = await refresh(b, clientId, refreshToken);
    t.equal(last.status, 200, 'the last acknowledged refresh token still works');
  });
});
