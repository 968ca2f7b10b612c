/**
 * A gateway on the Redis state store while redis-server goes away and comes back (DESIGN.md §8,
 * issue 4): /mcp with a valid JWT keeps working (signature + the provider's outage grace), the OAuth
 * endpoints answer 503 temporarily_unavailable quickly, /readyz says why, and after the restart
 * (same port, AOF with appendfsync always) everything acknowledged before the outage still works.
 */
import t from 'tap';
import { request } from 'undici';
import { connectClient } from '../helpers/gateway.js';
import { bearer, obtainTokens, probeMcp, refresh, register, registerClient, startAsGateway, type Tokens } from '../helpers/oauth-as.js';
import { startRedis } from '../helpers/redis.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function readyz(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`${url}/readyz`);
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = Date.now();
  const value = await fn();
  return [value, Date.now() - started];
}

t.test('Redis down: JWT calls continue, OAuth endpoints answer 503, /readyz says why; all recover after the restart', async (t) => {
  const redis = await startRedis(t, { persistent: true });
  if (!redis) return;
  const gw = await startAsGateway(t, { stateStore: { type: 'redis', url: redis.url, keyPrefix: 'gh:' } });
  const { issuer, mcpUrl } = gw;
  t.same((await readyz(issuer)).body.stateStore, 'up', '/readyz: state store up');

  // Acknowledged before the outage: a registration and a token family (with its refresh token).
  const { clientId, tokens } = await obtainTokens(issuer);
  const spareClientId = await registerClient(issuer);
  const client = await connectClient(t, mcpUrl, tokens.access_token);
  t.ok((await client.listTools()).tools.some((tool) => tool.name === 'fx__echo'), 'tools/list before the outage');

  await redis.stop({ hard: true });
  // Past the 2 s revocation cache: the provider now asks the store, fails, and uses its outage grace.
  await sleep(2_300);

  const tools = await client.listTools();
  t.ok(tools.tools.some((tool) => tool.name === 'fx__echo'), 'tools/list works during the outage');
  const echoed = await client.callTool({ name: 'fx__echo', arguments: { text: 'during the outage' } });
  t.match(JSON.stringify(echoed.content), /during the outage/, 'tools/call works during the outage');
  t.equal((await probeMcp(mcpUrl, bearer(tokens.access_token))).status, 200, 'a new MCP session with the JWT works too');
  t.equal((await probeMcp(mcpUrl, bearer('not-a-jwt'))).status, 401, 'a bad token is still refused');

  const [refreshed, refreshMs] = await timed(() => refresh(issuer, clientId, tokens.refresh_token));
  t.equal(refreshed.status, 503, 'refresh: 503');
  t.equal(refreshed.json.error, 'temporarily_unavailable');
  t.equal(refreshed.headers['retry-after'], '5');
  t.ok(refreshMs < 1_500, `refresh answered quickly (${refreshMs} ms)`);
  const [registered, registerMs] = await timed(() => register(issuer));
  t.equal(registered.status, 503, 'register: 503');
  t.equal(registered.json.error, 'temporarily_unavailable');
  t.ok(registerMs < 1_500, `register answered quickly (${registerMs} ms)`);
  const [down, readyMs] = await timed(() => readyz(issuer));
  t.equal(down.status, 503, '/readyz: 503');
  t.equal(down.body.stateStore, 'unreachable', '/readyz says the state store is unreachable');
  t.ok(readyMs < 1_500, `/readyz answered quickly (${readyMs} ms)`);

  await redis.restart();
  const restarted = Date.now();
  let ready = await readyz(issuer);
  while (ready.status !== 200 && Date.now() - restarted < 10_000) {
    await sleep(50);
    ready = await readyz(issuer);
  }
  const recoveryMs = Date.now() - restarted;
  t.equal(ready.status, 200, '/readyz: 200 again');
  t.equal(ready.body.stateStore, 'up');
  t.ok(recoveryMs < 3_000, `recovered ${recoveryMs} ms after redis-server was back`);
  t.comment(`/readyz 200 again ${recoveryMs} ms after the restart`);

  // The refresh token issued before the outage works: the refused refresh did not rotate anything.
  const after = await refresh(issuer, clientId, tokens.refresh_token);
  t.equal(after.status, 200, after.status === 200 ? 'refresh after the outage works' : `refresh after the outage: ${after.text.slice(0, 200)}`);
  const fresh = after.json as unknown as Tokens;
  t.equal((await probeMcp(mcpUrl, bearer(fresh.access_token))).status, 200, 'the refreshed access token works');
  t.equal((await refresh(issuer, clientId, fresh.refresh_token)).status, 200, 'and its refresh token rotates again');
  // The registration acknowledged before the outage survived the restart.
  const spare = await obtainTokens(issuer, spareClientId);
  t.equal((await probeMcp(mcpUrl, bearer(spare.tokens.access_token))).status, 200, 'a client registered before the outage completes a new flow');
  t.equal((await register(issuer)).status, 201, 'registration works again');
  t.ok((await client.listTools()).tools.length > 0, 'the MCP session opened before the outage still works');
});
