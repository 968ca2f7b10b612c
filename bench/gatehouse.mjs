// Gatehouse under test: `mcp serve` processes (the real CLI) and its Authorization Server, driven headlessly.
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { CLI, work, freePort, spawnTracked, waitReady } from './lib.mjs';

export const SECRET = 'bench-secret-0123456789-0123456789-0123456789';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/**
 * Starts `mcp serve` on `config` (a function of the issuer URL); returns its base URL, child, pid
 * and cold start to ready (ms). `nodeArgs` go before the CLI path (e.g. `--inspect=127.0.0.1:0`).
 * Its logs (and the inspector's URL) go to <name>.log in the bench's temp dir: `child.text()`.
 */
export async function startGateway(name, config, { nodeArgs = [] } = {}) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const path = join(work, `${name}.json`);
  writeFileSync(path, JSON.stringify(config(issuer)));
  const started = Date.now();
  const child = spawnTracked(process.execPath, [...nodeArgs, CLI, 'serve', '--config', path, '--http', `127.0.0.1:${port}`], { log: join(work, `${name}.log`) });
  await waitReady(issuer, child);
  return { base: issuer, pid: child.pid, child, coldStartMs: Date.now() - started };
}

function aclRules(count) {
  const rules = [];
  for (let i = 0; i < count - 1; i++) rules.push({ roles: [`team-${i}`], tools: [`nothing_${i}__*`], policy: 'allow' });
  rules.push({ roles: ['bench'], tools: ['*'], policy: 'allow' });
  return rules;
}

/** The benchmark's gateway configuration: full ProviderChain, 100-rule ACL, file store unless `extra` says otherwise. */
export function gatewayConfig(backends, extra = {}) {
  return (issuer) => ({
    mcpServers: backends,
    serverAuth: {
      providers: ['bearer', 'oauth_as'],
      bearer: { tokens: { 'bench-static-token-0000000000': { subject: 'bench-static', roles: ['bench'] } } },
      oauthAs: { issuerUrl: issuer, jwtSecret: SECRET, consent: 'never', injectedRoles: ['bench'], registration: { ratePerMinute: 100000 } },
    },
    acl: { default: 'deny', rules: aclRules(100) },
    stateStore: { type: 'file', path: join(work, `state-${randomBytes(4).toString('hex')}.json`) },
    aggregation: { startupWaitMs: 60000 },
    ...extra,
  });
}

/** Our own AS, driven headlessly: register, authorize with the trusted header, exchange. */
export async function oauthTokens(base) {
  const redirect = 'http://127.0.0.1:9/cb';
  const reg = await request(`${base}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: `bench-${randomBytes(3).toString('hex')}`, redirect_uris: [redirect] }) });
  const { client_id: clientId } = await reg.body.json();
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const url = new URL(`${base}/oauth/authorize`);
  for (const [k, v] of Object.entries({ response_type: 'code', client_id: clientId, redirect_uri: redirect, code_challenge: challenge, code_challenge_method: 'S256', resource: `${base}/mcp` })) url.searchParams.set(k, v);
  const auth = await request(url, { headers: { 'x-forwarded-user': 'bench-user', 'x-forwarded-groups': 'bench' } });
  await auth.body.dump();
  const code = new URL(auth.headers.location).searchParams.get('code');
  const token = await request(`${base}/oauth/token`, { method: 'POST', headers: FORM, body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: redirect, client_id: clientId }).toString() });
  const json = await token.body.json();
  return { clientId, access: json.access_token, refresh: json.refresh_token };
}

/** A refresh-grant target on a gateway: one family (client + refresh token) per worker, rotated on every call. */
export function gatewayRefreshTarget(gateway) {
  return {
    base: gateway.base,
    pid: gateway.pid,
    family: () => oauthTokens(gateway.base),
    async refresh(pool, family) {
      const res = await pool.request({ path: '/oauth/token', method: 'POST', headers: FORM, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: family.refresh, client_id: family.clientId }).toString() });
      const json = await res.body.json();
      if (res.statusCode !== 200 || !json.refresh_token) throw new Error(`gateway refresh failed: ${res.statusCode} ${JSON.stringify(json)}`);
      family.refresh = json.refresh_token;
    },
  };
}
