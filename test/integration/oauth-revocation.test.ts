/**
 * Token revocation (RFC 7009) at /oauth/revoke: a refresh token or an access token revokes its
 * whole family (the access tokens stop working on /mcp within the provider's ~2 s cache, the
 * refresh token is refused); unknown tokens answer 200; another client's token answers 200 and
 * revokes nothing; client authentication is enforced.
 */
import t from 'tap';
import {
  authorize, bearer, exchange, obtainTokens, registerClient, postForm, probeMcp, refresh, register, revoke, startAsGateway, waitUntilRefused,
} from '../helpers/oauth-as.js';

const gw = await startAsGateway(t, { oauthAs: { registration: { ratePerMinute: 1000 } } });
const { issuer, mcpUrl } = gw;

t.test('revoking a refresh token revokes its family', async (t) => {
  const { clientId, tokens } = await obtainTokens(issuer);
  const rotated = await refresh(issuer, clientId, tokens.refresh_token);
  t.equal(rotated.status, 200);
  const newer = rotated.json.access_token as string;
  t.equal((await probeMcp(mcpUrl, bearer(tokens.access_token))).status, 200, 'works before');

  const res = await revoke(issuer, clientId, rotated.json.refresh_token as string, 'refresh_token');
  t.equal(res.status, 200);
  t.equal(res.headers['cache-control'], 'no-store');
  const started = Date.now();
  t.equal((await waitUntilRefused(mcpUrl, tokens.access_token, 3500)).status, 401, 'the first access token is refused');
  t.equal((await waitUntilRefused(mcpUrl, newer, 3500)).status, 401, 'the access token of the newer generation too');
  t.ok(Date.now() - started < 3500, `within ~3 s (${Date.now() - started} ms)`);
  const again = await refresh(issuer, clientId, rotated.json.refresh_token as string);
  t.equal(again.status, 400);
  t.equal(again.json.error, 'invalid_grant', 'the refresh token is refused');
  t.notOk(again.json.access_token);
});

t.test('revoking the previous (already rotated) refresh token revokes the family too', async (t) => {
  const { clientId, tokens } = await obtainTokens(issuer);
  const rotated = await refresh(issuer, clientId, tokens.refresh_token);
  t.equal((await revoke(issuer, clientId, tokens.refresh_token)).status, 200);
  const current = await refresh(issuer, clientId, rotated.json.refresh_token as string);
  t.equal(current.status, 400);
  t.equal(current.json.error, 'invalid_grant');
});

t.test('revoking an access token revokes its family (without a hint, and with one)', async (t) => {
  for (const hint of [undefined, 'access_token', 'refresh_token']) {
    const { clientId, tokens } = await obtainTokens(issuer);
    const res = await revoke(issuer, clientId, tokens.access_token, hint);
    t.equal(res.status, 200, `hint ${hint}`);
    t.equal((await waitUntilRefused(mcpUrl, tokens.access_token, 3500)).status, 401, `hint ${hint}: access token refused`);
    const refreshed = await refresh(issuer, clientId, tokens.refresh_token);
    t.equal(refreshed.status, 400, `hint ${hint}: refresh refused`);
    t.equal(refreshed.json.error, 'invalid_grant');
  }
});

t.test('a wrong token_type_hint does not stop the search (RFC 7009 §2.1)', async (t) => {
  const { clientId, tokens } = await obtainTokens(issuer);
  const res = await revoke(issuer, clientId, tokens.refresh_token, 'access_token');
  t.equal(res.status, 200);
  const refreshed = await refresh(issuer, clientId, tokens.refresh_token);
  t.equal(refreshed.status, 400, 'the refresh token was revoked despite the access_token hint');
  t.equal(refreshed.json.error, 'invalid_grant');
  t.equal((await waitUntilRefused(mcpUrl, tokens.access_token, 3500)).status, 401);
});

t.test('an unknown or malformed token → 200, nothing else happens', async (t) => {
  const { clientId, tokens } = await obtainTokens(issuer);
  for (const token of ['no-such-token', 'a.b.c', `${tokens.refresh_token.split('.')[0]}.9.${'A'.repeat(43)}`, 'eyJhbGciOiJIUzI1NiJ9.e30.x']) {
    const res = await revoke(issuer, clientId, token);
    t.equal(res.status, 200, token);
    t.same(res.json, {}, 'empty JSON body');
  }
  t.equal((await probeMcp(mcpUrl, bearer(tokens.access_token))).status, 200, 'the client\'s own tokens are untouched');
  t.equal((await refresh(issuer, clientId, tokens.refresh_token)).status, 200);
});

t.test('another client\'s token → 200 but nothing is revoked', async (t) => {
  const victim = await obtainTokens(issuer, await registerClient(issuer, { client_name: 'victim' }));
  const attacker = await obtainTokens(issuer, await registerClient(issuer, { client_name: 'attacker' }), { user: 'mallory@example.com' });
  t.not(attacker.clientId, victim.clientId, 'two distinct clients');
  for (const token of [victim.tokens.refresh_token, victim.tokens.access_token]) {
    const res = await revoke(issuer, attacker.clientId, token);
    t.equal(res.status, 200);
  }
  await new Promise((r) => setTimeout(r, 2500)); // past the provider's revocation cache
  t.equal((await probeMcp(mcpUrl, bearer(victim.tokens.access_token))).status, 200, 'the victim\'s access token still works');
  t.equal((await refresh(issuer, victim.clientId, victim.tokens.refresh_token)).status, 200, 'the victim\'s refresh token still works');
  t.equal((await probeMcp(mcpUrl, bearer(attacker.tokens.access_token))).status, 200, 'the attacker\'s own tokens are untouched too');
});

t.test('revocation needs client authentication', async (t) => {
  const { tokens } = await obtainTokens(issuer);
  const anonymous = await postForm(`${issuer}/oauth/revoke`, { token: tokens.refresh_token });
  t.equal(anonymous.status, 401);
  t.equal(anonymous.json.error, 'invalid_client');
  const unknown = await revoke(issuer, 'no-such-client', tokens.refresh_token);
  t.equal(unknown.status, 401);
  t.equal(unknown.json.error, 'invalid_client');
  const missing = await postForm(`${issuer}/oauth/revoke`, { client_id: 'x' });
  t.ok(missing.status === 400 || missing.status === 401, `no token: ${missing.status}`);
  await new Promise((r) => setTimeout(r, 2100));
  t.equal((await probeMcp(mcpUrl, bearer(tokens.access_token))).status, 200, 'nothing was revoked');
});

t.test('a confidential client revokes only with its secret', async (t) => {
  const reg = await register(issuer, { client_name: 'confidential revoker', token_endpoint_auth_method: 'client_secret_post' });
  const clientId = reg.json.client_id as string;
  const secret = reg.json.client_secret as string;
  const { tokens } = await obtainTokensWithSecret(clientId, secret);
  const wrong = await postForm(`${issuer}/oauth/revoke`, { token: tokens.refresh_token, client_id: clientId, client_secret: 'wrong' });
  t.equal(wrong.status, 401);
  t.equal(wrong.json.error, 'invalid_client');
  t.equal((await refresh(issuer, clientId, tokens.refresh_token, {})).status, 401, 'refresh without the secret is refused as well');
  const right = await postForm(`${issuer}/oauth/revoke`, { token: tokens.refresh_token, client_id: clientId, client_secret: secret });
  t.equal(right.status, 200);
  const after = await postForm(`${issuer}/oauth/token`, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: clientId, client_secret: secret });
  t.equal(after.status, 400);
  t.equal(after.json.error, 'invalid_grant');
});

async function obtainTokensWithSecret(clientId: string, secret: string) {
  const auth = await authorize(issuer, clientId);
  const res = await exchange(issuer, clientId, auth.code!, auth.verifier, { client_secret: secret });
  if (res.status !== 200) throw new Error(`exchange failed: ${res.text}`);
  return { tokens: res.json as { access_token: string; refresh_token: string } };
}
