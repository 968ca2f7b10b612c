/**
 * Dynamic Client Registration (RFC 7591) as real clients use it (CLIENTS.md): what is registered is
 * what is returned, Cursor's partly-allowed redirect set, identical re-registration, rate limit and
 * cap, confidential clients, reaping of never-used clients, pre-registered clients from config and
 * from MCP_AUTH_SERVER_CONFIG, and port-agnostic loopback redirects (Claude Code, VS Code).
 */
import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  REDIRECT, authorize, exchange, postForm, probeMcp, bearer, refresh, register, registerClient, startAsGateway, obtainTokens,
} from '../helpers/oauth-as.js';
import { readStateFiles, readStateText } from '../helpers/state-files.js';

const CURSOR = ['cursor://anysphere.cursor-mcp/oauth/callback', 'https://www.cursor.com/agents/mcp/oauth/callback', 'http://localhost:8787/callback'];

t.test('201 with exactly what was registered, and the same in the store', async (t) => {
  const gw = await startAsGateway(t);
  const res = await register(gw.issuer, {
    client_name: 'mcp-remote',
    software_id: '2e6dc280-f3c3-4e01-99a7-8181dbd1d23d',
    software_version: '0.1.37',
    client_uri: 'https://github.com/geelen/mcp-remote',
    scope: 'mcp',
    redirect_uris: ['http://localhost:3334/oauth/callback'],
  });
  t.equal(res.status, 201, res.text);
  t.equal(res.headers['cache-control'], 'no-store');
  const body = res.json;
  t.type(body.client_id, 'string');
  t.notMatch(String(body.client_id), /^https:\/\//, 'a random client_id, never a URL');
  t.ok(String(body.client_id).length >= 16, 'long enough to be unguessable');
  t.type(body.client_id_issued_at, 'number');
  t.same(Object.keys(body).sort(), ['client_id', 'client_id_issued_at', 'client_name', 'client_uri', 'grant_types', 'redirect_uris', 'response_types', 'scope', 'software_id', 'software_version', 'token_endpoint_auth_method'].sort());
  t.match(body, {
    client_name: 'mcp-remote',
    software_id: '2e6dc280-f3c3-4e01-99a7-8181dbd1d23d',
    software_version: '0.1.37',
    client_uri: 'https://github.com/geelen/mcp-remote',
    redirect_uris: ['http://localhost:3334/oauth/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    scope: 'mcp',
  });
  t.notOk(body.client_secret, 'a public client has no secret');
  const state = await readStateFiles(gw.statePath);
  const stored = state.clients[body.client_id as string]?.value;
  t.ok(stored, 'durable before the 201');
  t.same(stored?.redirect_uris, body.redirect_uris);
  t.equal(stored?.client_name, body.client_name);
});

t.test('Cursor\'s three URIs with an allowlist that refuses one: the allowed ones are registered and returned', async (t) => {
  const gw = await startAsGateway(t, { oauthAs: { redirectUriAllowlist: ['cursor://anysphere.cursor-mcp/oauth/callback', 'http://localhost/*'] } });
  const res = await register(gw.issuer, { client_name: 'Cursor', redirect_uris: CURSOR });
  t.equal(res.status, 201, res.text);
  t.same(res.json.redirect_uris, [CURSOR[0], CURSOR[2]], 'exactly the allowed ones');
  // The refused one cannot be used at /oauth/authorize; the allowed ones can.
  const clientId = res.json.client_id as string;
  const refused = await authorize(gw.issuer, clientId, { redirectUri: CURSOR[1] });
  t.equal(refused.status, 400);
  t.equal(refused.location, undefined);
  const allowed = await authorize(gw.issuer, clientId, { redirectUri: CURSOR[2] });
  t.equal(allowed.status, 302);
  t.ok(allowed.code);
});

t.test('Cursor\'s three URIs with the default allowlist: all registered', async (t) => {
  const gw = await startAsGateway(t);
  const res = await register(gw.issuer, { client_name: 'Cursor', redirect_uris: CURSOR });
  t.equal(res.status, 201, res.text);
  t.same(res.json.redirect_uris, CURSOR);
});

t.test('no allowed redirect URI → 400 invalid_redirect_uri, nothing registered', async (t) => {
  const gw = await startAsGateway(t, { oauthAs: { redirectUriAllowlist: ['https://claude.ai/api/mcp/auth_callback'] } });
  const res = await register(gw.issuer, { client_name: 'Cursor', redirect_uris: CURSOR });
  t.equal(res.status, 400);
  t.equal(res.json.error, 'invalid_redirect_uri');
  t.notOk(res.json.client_id);
  t.notOk(Object.keys((await readStateFiles(gw.statePath)).clients).length, 'no client stored');
});

t.test('redirect URIs that are never acceptable → invalid_redirect_uri', async (t) => {
  const gw = await startAsGateway(t);
  for (const uri of ['javascript:alert(1)', 'http://evil.example/callback', 'https://claude.ai/api/mcp/auth_callback#frag', 'http://user@localhost/cb']) {
    const res = await register(gw.issuer, { redirect_uris: [uri] });
    t.equal(res.status, 400, uri);
    t.equal(res.json.error, 'invalid_redirect_uri', uri);
  }
  const missing = await register(gw.issuer, { redirect_uris: undefined });
  t.equal(missing.status, 400);
  t.equal(missing.json.error, 'invalid_redirect_uri', 'redirect_uris is required');
});

t.test('unsupported grant types, response types and auth methods → invalid_client_metadata', async (t) => {
  const gw = await startAsGateway(t);
  for (const metadata of [
    { grant_types: ['client_credentials'] },
    { grant_types: ['authorization_code', 'implicit'] },
    { response_types: ['token'] },
    { token_endpoint_auth_method: 'private_key_jwt' },
  ]) {
    const res = await register(gw.issuer, metadata);
    t.equal(res.status, 400, JSON.stringify(metadata));
    t.equal(res.json.error, 'invalid_client_metadata', JSON.stringify(metadata));
    t.notOk(res.json.client_id);
  }
});

t.test('an identical re-registration returns the same client_id; a different one does not', async (t) => {
  const gw = await startAsGateway(t);
  const metadata = { client_name: 'MCP CLI Client', software_id: 'mcp-remote', redirect_uris: ['http://localhost:3334/oauth/callback', 'http://127.0.0.1:3334/oauth/callback'] };
  const first = await register(gw.issuer, metadata);
  const again = await register(gw.issuer, { ...metadata, redirect_uris: [...metadata.redirect_uris].reverse() });
  t.equal(first.status, 201);
  t.equal(again.status, 201);
  t.equal(again.json.client_id, first.json.client_id, 'the same registration, redirect set order aside');
  const otherName = await register(gw.issuer, { ...metadata, client_name: 'Another' });
  t.not(otherName.json.client_id, first.json.client_id);
  const otherUris = await register(gw.issuer, { ...metadata, redirect_uris: ['http://localhost:3335/oauth/callback'] });
  t.not(otherUris.json.client_id, first.json.client_id);
  const confidential = await register(gw.issuer, { ...metadata, token_endpoint_auth_method: 'client_secret_basic' });
  t.not(confidential.json.client_id, first.json.client_id, 'a confidential registration always gets its own client (and secret)');
});

t.test('rate limit: the 4th registration in a minute from one address → 429', async (t) => {
  const gw = await startAsGateway(t, { oauthAs: { registration: { ratePerMinute: 3 } } });
  for (let i = 0; i < 3; i++) t.equal((await register(gw.issuer, { client_name: `c${i}` })).status, 201, `registration ${i + 1}`);
  const fourth = await register(gw.issuer, { client_name: 'c4' });
  t.equal(fourth.status, 429);
  t.equal(fourth.json.error, 'temporarily_unavailable');
  t.ok(fourth.headers['retry-after'], 'Retry-After');
  t.notOk(fourth.json.client_id);
});

t.test('cap: registrations beyond maxClients → 503', async (t) => {
  const gw = await startAsGateway(t, { oauthAs: { registration: { maxClients: 2 } } });
  t.equal((await register(gw.issuer, { client_name: 'a' })).status, 201);
  t.equal((await register(gw.issuer, { client_name: 'b' })).status, 201);
  const third = await register(gw.issuer, { client_name: 'c' });
  t.equal(third.status, 503);
  t.equal(third.json.error, 'temporarily_unavailable');
  t.notOk(third.json.client_id);
});

t.test('a confidential registration gets a secret that works with Basic and fails with a wrong one', async (t) => {
  const gw = await startAsGateway(t);
  const res = await register(gw.issuer, { client_name: 'Confidential', token_endpoint_auth_method: 'client_secret_basic' });
  t.equal(res.status, 201, res.text);
  const clientId = res.json.client_id as string;
  const secret = res.json.client_secret as string;
  t.type(secret, 'string');
  t.ok(secret.length >= 32);
  t.equal(res.json.client_secret_expires_at, 0);
  t.notMatch(await readStateText(gw.statePath) + await readStateText(`${gw.statePath}.journal`), secret, 'the secret is not stored');

  const basic = (id: string, s: string) => ({ authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(s)}`).toString('base64')}` });
  const auth = await authorize(gw.issuer, clientId);
  t.ok(auth.code);
  const wrong = await exchange(gw.issuer, clientId, auth.code!, auth.verifier, {}, basic(clientId, `${secret}x`));
  t.equal(wrong.status, 401);
  t.equal(wrong.json.error, 'invalid_client');
  t.match(String(wrong.headers['www-authenticate']), /^Basic /);
  t.notOk(wrong.json.access_token);

  const auth2 = await authorize(gw.issuer, clientId);
  const none = await exchange(gw.issuer, clientId, auth2.code!, auth2.verifier);
  t.equal(none.status, 401, 'no secret at all');
  t.equal(none.json.error, 'invalid_client');

  const auth3 = await authorize(gw.issuer, clientId);
  const ok = await exchange(gw.issuer, clientId, auth3.code!, auth3.verifier, {}, basic(clientId, secret));
  t.equal(ok.status, 200, ok.text);
  t.equal((await probeMcp(gw.mcpUrl, bearer(ok.json.access_token as string))).status, 200);
  const refreshed = await refresh(gw.issuer, clientId, ok.json.refresh_token as string, basic(clientId, secret));
  t.equal(refreshed.status, 200, 'refresh with Basic');
  const refreshWrong = await refresh(gw.issuer, clientId, refreshed.json.refresh_token as string, basic(clientId, 'nope'));
  t.equal(refreshWrong.status, 401);
  t.equal(refreshWrong.json.error, 'invalid_client');
});

t.test('never-used registrations are reaped; used ones are kept', async (t) => {
  const first = await startAsGateway(t, { oauthAs: { registration: { unusedClientTtlSeconds: 1 } } });
  const unused = await registerClient(first.issuer, { client_name: 'never used' });
  const { clientId: used, tokens } = await obtainTokens(first.issuer, await registerClient(first.issuer, { client_name: 'used' }));
  await new Promise((r) => setTimeout(r, 1500));
  await first.stop();
  // The reaper runs when the Authorization Server starts (and every 10 minutes after).
  const second = await startAsGateway(t, { port: first.port, dir: first.dir, oauthAs: { registration: { unusedClientTtlSeconds: 1 } } });
  const state = await readStateFiles(second.statePath);
  await new Promise((r) => setTimeout(r, 300));
  const after = await readStateFiles(second.statePath);
  t.notOk(after.clients[unused], 'the never-used client was reaped');
  t.ok(after.clients[used] ?? state.clients[used], 'the used client is kept');
  const gone = await authorize(second.issuer, unused);
  t.match(gone.body, /not registered here/);
  t.equal((await probeMcp(second.mcpUrl, bearer(tokens.access_token))).status, 200, 'the used client\'s token still works');
  t.equal((await refresh(second.issuer, used, tokens.refresh_token)).status, 200);
});

const PRE_PUBLIC = { client_id: 'cli-public', client_name: 'Pre-registered CLI', redirect_uris: [REDIRECT] };
const PRE_SECRET = 'pre-registered-secret-0123456789-abcdef';
const PRE_CONFIDENTIAL = { client_id: 'ci-bot', client_name: 'CI', redirect_uris: [REDIRECT], client_secret: PRE_SECRET, token_endpoint_auth_method: 'client_secret_basic' };


async function preRegisteredFlows(t: Test, issuer: string, mcpUrl: string, prefix: string): Promise<void> {
  const pub = await obtainTokens(issuer, `${prefix}cli-public`);
  t.equal((await probeMcp(mcpUrl, bearer(pub.tokens.access_token))).status, 200, 'public pre-registered client');
  t.equal((await refresh(issuer, pub.clientId, pub.tokens.refresh_token)).status, 200, 'public pre-registered client refreshes');
  const id = `${prefix}ci-bot`;
  const auth = await authorize(issuer, id);
  t.ok(auth.code, 'confidential client authorized');
  const wrong = await exchange(issuer, id, auth.code!, auth.verifier, { client_secret: 'wrong' });
  t.equal(wrong.status, 401, 'wrong secret');
  const auth2 = await authorize(issuer, id);
  const basic = { authorization: `Basic ${Buffer.from(`${id}:${PRE_SECRET}`).toString('base64')}` };
  const ok = await exchange(issuer, id, auth2.code!, auth2.verifier, {}, basic);
  t.equal(ok.status, 200, ok.text);
  t.equal((await probeMcp(mcpUrl, bearer(ok.json.access_token as string))).status, 200, 'confidential pre-registered client');
  t.equal((await refresh(issuer, id, ok.json.refresh_token as string, basic)).status, 200, 'confidential pre-registered client refreshes');
}

t.test('pre-registered public and confidential clients from config complete the flow', async (t) => {
  const gw = await startAsGateway(t, { oauthAs: { clients: [PRE_PUBLIC, PRE_CONFIDENTIAL] } });
  await preRegisteredFlows(t, gw.issuer, gw.mcpUrl, '');
  const metadata = (await (await fetch(`${gw.issuer}/.well-known/oauth-authorization-server`)).json()) as { token_endpoint_auth_methods_supported: string[] };
  t.ok(metadata.token_endpoint_auth_methods_supported.includes('client_secret_basic'));
});

t.test('pre-registered clients from MCP_AUTH_SERVER_CONFIG complete the flow (memory store when no stateStore block)', async (t) => {
  const seed = JSON.stringify({ version: 1, clients: [{ ...PRE_PUBLIC, client_id: 'seed-cli-public' }, { ...PRE_CONFIDENTIAL, client_id: 'seed-ci-bot' }] });
  const first = await startAsGateway(t, { env: { MCP_AUTH_SERVER_CONFIG: seed }, stateStore: null });
  await preRegisteredFlows(t, first.issuer, first.mcpUrl, 'seed-');
  const dynamic = await registerClient(first.issuer);
  t.notOk(existsSync(join(first.dir, 'auth_server.json')), 'nothing written next to the config: the memory store is used');
  await first.stop();
  const second = await startAsGateway(t, { env: { MCP_AUTH_SERVER_CONFIG: seed }, stateStore: null, port: first.port, dir: first.dir });
  t.match((await authorize(second.issuer, dynamic)).body, /not registered here/, 'dynamic registrations did not survive the restart');
  t.ok((await authorize(second.issuer, 'seed-cli-public')).code, 'seeded clients are still there');
});

t.test('MCP_AUTH_SERVER_CONFIG with a configured file store: dynamic state goes to the file, seeds are never written', async (t) => {
  const seed = JSON.stringify({ version: 1, clients: [{ ...PRE_PUBLIC, client_id: 'seed-only' }] });
  const gw = await startAsGateway(t, { env: { MCP_AUTH_SERVER_CONFIG: seed } });
  const { clientId } = await obtainTokens(gw.issuer, 'seed-only');
  t.equal(clientId, 'seed-only');
  const dynamic = await registerClient(gw.issuer);
  const state = await readStateFiles(gw.statePath);
  t.ok(state.clients[dynamic], 'dynamic registration in the file');
  t.notOk(state.clients['seed-only'], 'seed client not written');
  t.ok(Object.keys(state.sessions).length >= 1, 'the seed client\'s session is in the file');
});

t.test('loopback: port-less http://localhost/callback (Claude Code) and http://127.0.0.1:33418/ (VS Code) match any port', async (t) => {
  const gw = await startAsGateway(t);
  const claudeCode = await registerClient(gw.issuer, { client_name: 'Claude Code', redirect_uris: ['http://localhost/callback', 'http://127.0.0.1/callback'] });
  const vscode = await registerClient(gw.issuer, { client_name: 'VS Code', redirect_uris: ['https://vscode.dev/redirect', 'http://127.0.0.1/', 'http://127.0.0.1:33418/'] });
  for (const [clientId, redirectUri] of [[claudeCode, 'http://localhost:53124/callback'], [vscode, 'http://127.0.0.1:51000/'], [vscode, 'http://127.0.0.1:33418/']] as const) {
    const auth = await authorize(gw.issuer, clientId, { redirectUri });
    t.equal(auth.status, 302, redirectUri);
    t.equal(`${auth.location?.origin}${auth.location?.pathname}`, redirectUri, 'redirected to the requested port');
    t.ok(auth.code);
    const res = await exchange(gw.issuer, clientId, auth.code!, auth.verifier, { redirect_uri: redirectUri });
    t.equal(res.status, 200, res.text);
    const other = await exchange(gw.issuer, clientId, 'x', auth.verifier, { redirect_uri: redirectUri });
    t.equal(other.json.error, 'invalid_grant');
  }
  // The path and the loopback name still have to match.
  for (const [clientId, redirectUri] of [[claudeCode, 'http://localhost:53124/other'], [vscode, 'http://localhost:51000/'], [claudeCode, 'http://[::1]:53124/callback']] as const) {
    const auth = await authorize(gw.issuer, clientId, { redirectUri });
    t.equal(auth.status, 400, `${redirectUri} refused`);
    t.equal(auth.location, undefined);
  }
  // A code issued for one port must be redeemed with that same redirect_uri.
  const auth = await authorize(gw.issuer, claudeCode, { redirectUri: 'http://localhost:53124/callback' });
  const mismatch = await exchange(gw.issuer, claudeCode, auth.code!, auth.verifier, { redirect_uri: 'http://localhost:53125/callback' });
  t.equal(mismatch.status, 400);
  t.equal(mismatch.json.error, 'invalid_grant');
});

t.test('redirect_uri omitted: allowed with one registered URI, and then optional at the token endpoint (RFC 6749 §4.1.3)', async (t) => {
  const gw = await startAsGateway(t);
  const single = await registerClient(gw.issuer, { client_name: 'one redirect' });
  const omitted = await authorize(gw.issuer, single, { params: { redirect_uri: undefined } });
  t.equal(omitted.status, 302);
  t.equal(`${omitted.location?.origin}${omitted.location?.pathname}`, REDIRECT, 'the registered URI is used');
  const both = await postForm(`${gw.issuer}/oauth/token`, { grant_type: 'authorization_code', code: omitted.code!, code_verifier: omitted.verifier, client_id: single });
  t.equal(both.status, 200, `omitted in both requests: ${both.text}`);

  const omittedThenWrong = await authorize(gw.issuer, single, { params: { redirect_uri: undefined } });
  const wrong = await exchange(gw.issuer, single, omittedThenWrong.code!, omittedThenWrong.verifier, { redirect_uri: 'http://127.0.0.1:43210/other' });
  t.equal(wrong.json.error, 'invalid_grant', 'a different one at the token endpoint is refused');

  const sentThenOmitted = await authorize(gw.issuer, single);
  const missing = await postForm(`${gw.issuer}/oauth/token`, { grant_type: 'authorization_code', code: sentThenOmitted.code!, code_verifier: sentThenOmitted.verifier, client_id: single });
  t.equal(missing.status, 400);
  t.equal(missing.json.error, 'invalid_grant', 'sent at authorize → required at the token endpoint');

  const several = await registerClient(gw.issuer, { client_name: 'two redirects', redirect_uris: [REDIRECT, 'http://127.0.0.1:43210/other'] });
  const ambiguous = await authorize(gw.issuer, several, { params: { redirect_uri: undefined } });
  t.equal(ambiguous.status, 400, 'several registered URIs: redirect_uri is required');
  t.equal(ambiguous.location, undefined);
});
