/**
 * The Authorization Server against a hostile world: spoofed identity headers, bad redirect URIs,
 * PKCE and resource tricks, code and refresh-token replay, forged access tokens, deleted clients
 * and malformed requests. Each case asserts the status, the error code, and that nothing was issued.
 */
import t, { type Test } from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { request } from 'undici';
import { SignJWT, generateKeyPair, exportSPKI } from 'jose';
import {
  JWT_SECRET, REDIRECT, USER, agentFrom, authorize, browse, authorizeUrl, bearer, exchange, obtainTokens, pkce, postForm, postJson,
  probeMcp, refresh, register, registerClient, startAsGateway, waitUntilRefused, type AsGateway, type HttpAnswer,
} from '../helpers/oauth-as.js';

const shared: AsGateway = await startAsGateway(t, {
  oauthAs: {
    registration: { ratePerMinute: 1000 },
    clients: [{ client_id: 'outside-allowlist', client_name: 'Misconfigured', redirect_uris: ['https://evil.example/callback'] }],
  },
  http: { oauthBodyLimitBytes: 1024 },
});
const { issuer, mcpUrl } = shared;

function assertNoTokens(t: Test, res: HttpAnswer): void {
  t.notOk(res.json.access_token, 'no access token issued');
  t.notOk(res.json.refresh_token, 'no refresh token issued');
}

function assertJsonNoStore(t: Test, res: HttpAnswer): void {
  t.equal(res.headers['cache-control'], 'no-store', 'Cache-Control: no-store');
  t.match(String(res.headers['content-type']), /^application\/json/, 'JSON answer');
}


/* ---------- the trusted user header ---------- */

t.test('authorize from an untrusted peer (127.0.0.2) is a 403 page: no redirect, no code', async (t) => {
  const clientId = await registerClient(issuer);
  const { challenge } = pkce();
  const url = authorizeUrl(issuer, { response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', state: 's' });
  const res = await browse(url, { ...USER, localAddress: '127.0.0.2' });
  t.equal(res.status, 403);
  t.equal(res.location, undefined, 'not redirected');
  t.notMatch(res.body, /<form/, 'no consent form');
  t.notMatch(res.body, /code=/, 'no code anywhere');
  const control = await browse(url, USER);
  t.equal(control.status, 302, 'control: the same request from the trusted 127.0.0.1 gets a code');
  t.ok(new URL(control.location!).searchParams.get('code'));
});

t.test('X-Forwarded-For: 127.0.0.1 from an untrusted peer is still a 403', async (t) => {
  const clientId = await registerClient(issuer);
  const { challenge } = pkce();
  const url = authorizeUrl(issuer, { response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', state: 's' });
  const dispatcher = agentFrom('127.0.0.2');
  t.teardown(() => dispatcher.close());
  const res = await request(url, {
    dispatcher,
    headers: { 'x-forwarded-user': USER.user, 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1', forwarded: 'for=127.0.0.1' },
  });
  await res.body.text();
  t.equal(res.statusCode, 403);
  t.equal(res.headers.location, undefined, 'not redirected');
});

t.test('the user header is never an identity on /mcp', async (t) => {
  const probe = await probeMcp(mcpUrl, { 'x-forwarded-user': 'admin', 'x-forwarded-groups': 'admin' });
  t.equal(probe.status, 401);
  t.match(probe.challenge, /^Bearer /);
});

t.test('the user header is never an identity on /oauth/token', async (t) => {
  const res = await postForm(`${issuer}/oauth/token`, { grant_type: 'authorization_code', code: 'x', code_verifier: 'y'.repeat(43), redirect_uri: REDIRECT }, { 'x-forwarded-user': 'admin' });
  t.equal(res.status, 401, res.text);
  t.equal(res.json.error, 'invalid_client');
  assertNoTokens(t, res);
});

t.test('the user header is never an identity on /oauth/register (it registers a plain public client, nothing more)', async (t) => {
  const res = await register(issuer, { client_name: 'header test' }, { 'x-forwarded-user': 'admin' });
  t.equal(res.status, 201);
  t.notOk(res.json.client_secret, 'no secret');
  t.equal(res.json.token_endpoint_auth_method, 'none');
  t.notMatch(res.text, /admin/, 'the header value is not reflected anywhere');
});

/* ---------- phase 1: never redirect ---------- */

t.test('a redirect_uri that was not registered is an error page, never a redirect', async (t) => {
  const clientId = await registerClient(issuer);
  const auth = await authorize(issuer, clientId, { redirectUri: 'http://127.0.0.1:43210/other' });
  t.equal(auth.status, 400);
  t.equal(auth.location, undefined, 'no Location header');
  t.match(auth.body, /redirect/i);
});

t.test('a redirect_uri on another host than registered is an error page', async (t) => {
  const clientId = await registerClient(issuer);
  const auth = await authorize(issuer, clientId, { redirectUri: 'https://attacker.example/callback' });
  t.equal(auth.status, 400);
  t.equal(auth.location, undefined);
});

t.test('a registered redirect_uri outside the allowlist is an error page, never a redirect', async (t) => {
  const auth = await authorize(issuer, 'outside-allowlist', { redirectUri: 'https://evil.example/callback' });
  t.equal(auth.status, 400);
  t.equal(auth.location, undefined, 'no Location header');
});

t.test('an unknown client_id gets the page explaining how to clear the cached registration', async (t) => {
  const auth = await authorize(issuer, 'no-such-client');
  t.ok(auth.status === 400 || auth.status === 200, `status ${auth.status}`);
  t.equal(auth.location, undefined, 'not redirected');
  t.match(auth.body, /not registered here/);
  t.match(auth.body, /Clear the application/);
  t.match(auth.body, /no-such-client/);
});

/* ---------- phase 2: redirected errors ---------- */

async function phase2(t: Test, params: Record<string, string | undefined>, error: string): Promise<void> {
  const clientId = await registerClient(issuer);
  const auth = await authorize(issuer, clientId, { params });
  t.equal(auth.status, 302);
  t.equal(auth.location?.origin + auth.location!.pathname, REDIRECT, 'back to the registered redirect');
  t.equal(auth.location?.searchParams.get('error'), error);
  t.equal(auth.location?.searchParams.get('state'), 'st-123', 'state');
  t.equal(auth.location?.searchParams.get('iss'), issuer, 'iss');
  t.equal(auth.code, undefined, 'no code');
}

t.test('code_challenge_method=plain → invalid_request', (t) => phase2(t, { code_challenge_method: 'plain' }, 'invalid_request'));
t.test('no code_challenge → invalid_request', (t) => phase2(t, { code_challenge: undefined, code_challenge_method: undefined }, 'invalid_request'));
t.test('code_challenge absent but method S256 → invalid_request', (t) => phase2(t, { code_challenge: '' }, 'invalid_request'));
t.test('malformed code_challenge (too short) → invalid_request', (t) => phase2(t, { code_challenge: 'abc' }, 'invalid_request'));
t.test('malformed code_challenge (bad characters) → invalid_request', (t) => phase2(t, { code_challenge: `${'a'.repeat(42)}+` }, 'invalid_request'));
t.test('unknown resource → invalid_target', (t) => phase2(t, { resource: 'https://other.example/mcp' }, 'invalid_target'));
t.test('a resource with another path → invalid_target', (t) => phase2(t, { resource: `${issuer}/admin` }, 'invalid_target'));
t.test('response_type=token → unsupported_response_type', (t) => phase2(t, { response_type: 'token' }, 'unsupported_response_type'));

for (const [label, resource] of [['trailing-slash twin', '/mcp/'], ['bare origin', ''], ['bare origin with slash', '/']] as const) {
  t.test(`the ${label} of the resource is accepted and the token is for the canonical one`, async (t) => {
    const clientId = await registerClient(issuer);
    const auth = await authorize(issuer, clientId, { params: { resource: issuer + resource } });
    t.equal(auth.status, 302);
    t.ok(auth.code, 'a code');
    const res = await exchange(issuer, clientId, auth.code!, auth.verifier);
    t.equal(res.status, 200, res.text);
    const claims = JSON.parse(Buffer.from((res.json.access_token as string).split('.')[1]!, 'base64url').toString()) as { aud: string };
    t.equal(claims.aud, `${issuer}/mcp`);
    t.equal((await probeMcp(mcpUrl, bearer(res.json.access_token as string))).status, 200);
  });
}

/* ---------- the token endpoint ---------- */

t.test('a wrong code_verifier → invalid_grant, nothing issued', async (t) => {
  const clientId = await registerClient(issuer);
  const auth = await authorize(issuer, clientId);
  t.ok(auth.code);
  const res = await exchange(issuer, clientId, auth.code!, pkce().verifier);
  t.equal(res.status, 400);
  t.equal(res.json.error, 'invalid_grant');
  assertNoTokens(t, res);
  assertJsonNoStore(t, res);
});

t.test('a code used by another client → invalid_grant', async (t) => {
  const clientId = await registerClient(issuer);
  const other = await registerClient(issuer, { client_name: 'other' });
  const auth = await authorize(issuer, clientId);
  const res = await exchange(issuer, other, auth.code!, auth.verifier);
  t.equal(res.status, 400);
  t.equal(res.json.error, 'invalid_grant');
  assertNoTokens(t, res);
});

t.test('a code used twice: the second use fails and revokes what the first issued', async (t) => {
  const clientId = await registerClient(issuer);
  const auth = await authorize(issuer, clientId);
  const first = await exchange(issuer, clientId, auth.code!, auth.verifier);
  t.equal(first.status, 200, first.text);
  const access = first.json.access_token as string;
  t.equal((await probeMcp(mcpUrl, bearer(access))).status, 200, 'the first tokens work');

  const second = await exchange(issuer, clientId, auth.code!, auth.verifier);
  t.equal(second.status, 400);
  t.equal(second.json.error, 'invalid_grant');
  assertNoTokens(t, second);

  const probe = await waitUntilRefused(mcpUrl, access);
  t.equal(probe.status, 401, 'the access token from the first use stops working');
  t.match(probe.challenge, /error="invalid_token"/);
  const refreshed = await refresh(issuer, clientId, first.json.refresh_token as string);
  t.equal(refreshed.status, 400);
  t.equal(refreshed.json.error, 'invalid_grant', 'its refresh token is refused');
  assertNoTokens(t, refreshed);
});

t.test('a redirect_uri different from the authorization request → invalid_grant', async (t) => {
  const clientId = await registerClient(issuer);
  const auth = await authorize(issuer, clientId);
  const res = await exchange(issuer, clientId, auth.code!, auth.verifier, { redirect_uri: 'http://127.0.0.1:43210/other' });
  t.equal(res.status, 400);
  t.equal(res.json.error, 'invalid_grant');
  assertNoTokens(t, res);
});

t.test('refresh replay inside the grace window returns the same successor', async (t) => {
  const { clientId, tokens } = await obtainTokens(issuer);
  const first = await refresh(issuer, clientId, tokens.refresh_token);
  t.equal(first.status, 200, first.text);
  const replay = await refresh(issuer, clientId, tokens.refresh_token);
  t.equal(replay.status, 200, replay.text);
  t.equal(replay.json.refresh_token, first.json.refresh_token, 'the same successor refresh token');
  t.equal((await probeMcp(mcpUrl, bearer(replay.json.access_token as string))).status, 200, 'the family is alive');
  const next = await refresh(issuer, clientId, first.json.refresh_token as string);
  t.equal(next.status, 200, 'the successor still rotates');
});

t.test('refresh replay after the grace window revokes the whole family', async (t) => {
  const gw = await startAsGateway(t, { oauthAs: { refreshGraceSeconds: 1 } });
  const { clientId, tokens } = await obtainTokens(gw.issuer);
  const rotated = await refresh(gw.issuer, clientId, tokens.refresh_token);
  t.equal(rotated.status, 200, rotated.text);
  const access = rotated.json.access_token as string;
  t.equal((await probeMcp(gw.mcpUrl, bearer(access))).status, 200);
  await new Promise((r) => setTimeout(r, 2200));

  const replay = await refresh(gw.issuer, clientId, tokens.refresh_token);
  t.equal(replay.status, 400);
  t.equal(replay.json.error, 'invalid_grant');
  assertNoTokens(t, replay);
  const current = await refresh(gw.issuer, clientId, rotated.json.refresh_token as string);
  t.equal(current.status, 400, 'the current refresh token is refused too');
  t.equal(current.json.error, 'invalid_grant');
  const probe = await waitUntilRefused(gw.mcpUrl, access);
  t.equal(probe.status, 401, 'the access token stops working');
});

t.test('a refresh token presented by another client → invalid_grant, family untouched', async (t) => {
  const { clientId, tokens } = await obtainTokens(issuer);
  const other = await registerClient(issuer, { client_name: 'thief' });
  const stolen = await refresh(issuer, other, tokens.refresh_token);
  t.equal(stolen.status, 400);
  t.equal(stolen.json.error, 'invalid_grant');
  assertNoTokens(t, stolen);
  t.equal((await refresh(issuer, clientId, tokens.refresh_token)).status, 200, 'the owner still refreshes');
});

t.test('a forged refresh token → invalid_grant', async (t) => {
  const { clientId, tokens } = await obtainTokens(issuer);
  const [sid] = tokens.refresh_token.split('.');
  const forged = `${sid}.5.${createHash('sha256').update('x').digest('base64url')}`;
  const res = await refresh(issuer, clientId, forged);
  t.equal(res.status, 400);
  t.equal(res.json.error, 'invalid_grant');
});

/* ---------- forged access tokens on /mcp ---------- */

async function realClaims(): Promise<Record<string, unknown>> {
  const { tokens } = await obtainTokens(issuer);
  return JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

async function assertInvalidToken(t: Test, token: string): Promise<void> {
  const probe = await probeMcp(mcpUrl, bearer(token));
  t.equal(probe.status, 401);
  t.match(probe.challenge, /^Bearer /);
  t.match(probe.challenge, /error="invalid_token"/);
  t.match(probe.challenge, /resource_metadata="/);
}

const key = new TextEncoder().encode(JWT_SECRET);

t.test('an access token for another audience → 401 invalid_token', async (t) => {
  const claims = await realClaims();
  const token = await new SignJWT({ ...claims, aud: 'http://other.example/mcp' }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(key);
  await assertInvalidToken(t, token);
});

t.test('an access token with another issuer → 401 invalid_token', async (t) => {
  const claims = await realClaims();
  const token = await new SignJWT({ ...claims, iss: 'http://127.0.0.1:1' }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(key);
  await assertInvalidToken(t, token);
});

t.test('alg: none → 401 invalid_token', async (t) => {
  const claims = await realClaims();
  const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url');
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  await assertInvalidToken(t, `${header}.${payload}.`);
  await assertInvalidToken(t, `${header}.${payload}`);
});

t.test('HS256 signed with another secret → 401 invalid_token', async (t) => {
  const claims = await realClaims();
  const token = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(new TextEncoder().encode('another-secret-0123456789-0123456789-xyz'));
  await assertInvalidToken(t, token);
});

t.test('RS256, and HS256 keyed with an RSA public key (algorithm confusion) → 401 invalid_token', async (t) => {
  const claims = await realClaims();
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const rs = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' }).sign(privateKey);
  await assertInvalidToken(t, rs);
  const pem = await exportSPKI(publicKey);
  const confused = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(new TextEncoder().encode(pem));
  await assertInvalidToken(t, confused);
});

t.test('a tampered payload (groups widened) → 401 invalid_token', async (t) => {
  const { tokens } = await obtainTokens(issuer);
  const [h, p, s] = tokens.access_token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  const tampered = Buffer.from(JSON.stringify({ ...claims, groups: ['admin'] })).toString('base64url');
  await assertInvalidToken(t, `${h}.${tampered}.${s}`);
  t.equal((await probeMcp(mcpUrl, bearer(tokens.access_token))).status, 200, 'the genuine token still works');
});

t.test('an expired token (past the 30 s skew) signed with the right secret → 401 invalid_token', async (t) => {
  const claims = await realClaims();
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ ...claims, iat: now - 3700, nbf: now - 3700, exp: now - 120 }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(key);
  await assertInvalidToken(t, token);
  const fresh = await new SignJWT({ ...claims, iat: now, nbf: now, exp: now + 600, jti: 'fresh-control' }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(key);
  t.equal((await probeMcp(mcpUrl, bearer(fresh))).status, 200, 'control: the same claims, unexpired, are accepted');
});

t.test('a token with a wrong typ → 401 invalid_token', async (t) => {
  const claims = await realClaims();
  const token = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(key);
  await assertInvalidToken(t, token);
});

/* ---------- a deleted client ---------- */

t.test('a client removed from auth_server.json while the gateway was down: its tokens are refused', async (t) => {
  const first = await startAsGateway(t, { oauthAs: { accessTokenTtlSeconds: 3600 } });
  const { clientId, tokens } = await obtainTokens(first.issuer);
  t.equal((await probeMcp(first.mcpUrl, bearer(tokens.access_token))).status, 200);
  await first.stop();

  const state = JSON.parse(await readFile(first.statePath, 'utf8')) as { clients: Record<string, unknown> };
  t.ok(state.clients[clientId], 'the client is in the file');
  delete state.clients[clientId];
  await writeFile(first.statePath, JSON.stringify(state, null, 2));

  const second = await startAsGateway(t, { port: first.port, dir: first.dir });
  const probe = await probeMcp(second.mcpUrl, bearer(tokens.access_token));
  t.equal(probe.status, 401, 'the access token is refused');
  t.match(probe.challenge, /error="invalid_token"/);
  const refreshed = await refresh(second.issuer, clientId, tokens.refresh_token);
  t.ok(refreshed.status === 400 || refreshed.status === 401, `refresh refused (${refreshed.status})`);
  t.match(String(refreshed.json.error), /^invalid_(grant|client)$/);
  assertNoTokens(t, refreshed);
  const auth = await authorize(second.issuer, clientId);
  t.equal(auth.location, undefined, 'authorize shows the unknown-client page');
  t.match(auth.body, /not registered here/);
});

/* ---------- malformed requests ---------- */

t.test('an oversized body on /oauth/token → 413', async (t) => {
  const res = await postForm(`${issuer}/oauth/token`, { grant_type: 'refresh_token', refresh_token: 'x'.repeat(4096), client_id: 'c' });
  t.equal(res.status, 413);
  assertNoTokens(t, res);
});

t.test('an oversized body on /oauth/register → 413', async (t) => {
  const res = await register(issuer, { client_name: 'x'.repeat(4096) });
  t.equal(res.status, 413);
  t.notOk(res.json.client_id, 'nothing registered');
});

t.test('an oversized body on /oauth/revoke → 413', async (t) => {
  const res = await postForm(`${issuer}/oauth/revoke`, { token: 'x'.repeat(4096), client_id: 'c' });
  t.equal(res.status, 413);
});

t.test('/oauth/token with a JSON body → 400 invalid_request', async (t) => {
  const res = await postJson(`${issuer}/oauth/token`, { grant_type: 'authorization_code', code: 'x' });
  t.equal(res.status, 400);
  t.equal(res.json.error, 'invalid_request');
  assertJsonNoStore(t, res);
});

t.test('/oauth/token with no content type → 400 invalid_request', async (t) => {
  const res = await request(`${issuer}/oauth/token`, { method: 'POST', body: 'grant_type=refresh_token' });
  const json = (await res.body.json()) as Record<string, unknown>;
  t.equal(res.statusCode, 400);
  t.equal(json.error, 'invalid_request');
});

t.test('duplicate parameters on /oauth/token → 400 invalid_request', async (t) => {
  const { clientId, tokens } = await obtainTokens(issuer);
  const res = await postForm(`${issuer}/oauth/token`, `grant_type=refresh_token&refresh_token=${encodeURIComponent(tokens.refresh_token)}&client_id=${clientId}&client_id=${clientId}`);
  t.equal(res.status, 400);
  t.equal(res.json.error, 'invalid_request');
  assertNoTokens(t, res);
  assertJsonNoStore(t, res);
});

t.test('duplicate parameters on /oauth/authorize → error page, no code', async (t) => {
  const clientId = await registerClient(issuer);
  const { challenge } = pkce();
  const url = `${authorizeUrl(issuer, { response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' })}&code_challenge=${challenge}`;
  const res = await browse(url, USER);
  t.equal(res.status, 400);
  t.equal(res.location, undefined);
});

t.test('invalid JSON to /oauth/register → 400 invalid_client_metadata', async (t) => {
  const res = await postJson(`${issuer}/oauth/register`, '{"redirect_uris": [');
  t.equal(res.status, 400);
  t.equal(res.json.error, 'invalid_client_metadata');
  assertJsonNoStore(t, res);
});

t.test('a JSON array to /oauth/register → 400 invalid_client_metadata', async (t) => {
  const res = await postJson(`${issuer}/oauth/register`, [{ redirect_uris: [REDIRECT] }]);
  t.equal(res.status, 400);
  t.equal(res.json.error, 'invalid_client_metadata');
});

t.test('a form body to /oauth/register → 400', async (t) => {
  const res = await postForm(`${issuer}/oauth/register`, { redirect_uris: REDIRECT });
  t.equal(res.status, 400);
  t.match(String(res.json.error), /^invalid_(client_metadata|request)$/);
  t.notOk(res.json.client_id);
});

t.test('missing grant_type → 400 invalid_request', async (t) => {
  const res = await postForm(`${issuer}/oauth/token`, { code: 'x', client_id: 'c' });
  t.equal(res.status, 400);
  t.equal(res.json.error, 'invalid_request');
  assertJsonNoStore(t, res);
});

t.test('an unsupported grant → 400 unsupported_grant_type', async (t) => {
  const clientId = await registerClient(issuer);
  for (const grant of ['client_credentials', 'password', 'implicit', 'urn:ietf:params:oauth:grant-type:device_code']) {
    const res = await postForm(`${issuer}/oauth/token`, { grant_type: grant, client_id: clientId, username: 'a', password: 'b' });
    t.equal(res.status, 400, grant);
    t.equal(res.json.error, 'unsupported_grant_type', grant);
    assertNoTokens(t, res);
    assertJsonNoStore(t, res);
  }
});

t.test('GET /oauth/token → 405 JSON', async (t) => {
  const res = await request(`${issuer}/oauth/token?grant_type=authorization_code`);
  const json = (await res.body.json()) as Record<string, unknown>;
  t.equal(res.statusCode, 405);
  t.equal(json.error, 'invalid_request');
  t.equal(res.headers['cache-control'], 'no-store');
});

t.test('every token endpoint answer carries Cache-Control: no-store and a JSON content type', async (t) => {
  const { clientId, tokens } = await obtainTokens(issuer);
  const answers = [
    await refresh(issuer, clientId, tokens.refresh_token),
    await refresh(issuer, clientId, 'garbage'),
    await postForm(`${issuer}/oauth/token`, { grant_type: 'authorization_code', code: 'nope', code_verifier: pkce().verifier, redirect_uri: REDIRECT, client_id: clientId }),
    await postForm(`${issuer}/oauth/token`, { grant_type: 'refresh_token', refresh_token: 'x', client_id: 'unknown-client' }),
  ];
  t.same(answers.map((a) => a.status), [200, 400, 400, 401]);
  for (const res of answers) assertJsonNoStore(t, res);
});
