/**
 * The admin API (/admin/api/*) on a real in-process gateway with `bearer` + `oauth_as` and a file
 * store: OAuth users get their tokens through the SDK's own flow (HeadlessOAuthProvider), and the
 * assertions look at what those tokens can still do on /mcp and at the token endpoint after each
 * admin action.
 */
import t from 'tap';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { request } from 'undici';
import { Gateway } from '../../src/app.js';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { AdminError, AuthAdmin } from '../../src/oauth/admin.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { SessionRecord } from '../../src/store/types.js';
import { fixtureStdio, startGateway } from '../helpers/gateway.js';
import { connectWithOAuth, freePort, HeadlessOAuthProvider } from '../helpers/oauth.js';
import { authorizeUrl, bearer, JWT_SECRET, pkce, probeMcp, REDIRECT, refresh, waitUntilRefused } from '../helpers/oauth-as.js';

const ADMIN_TOKEN = 'admin-api-admin-token-000000000000';
const DEV_TOKEN = 'admin-api-dev-token-0000000000000000';
const CONFIG_CLIENT = 'ops-dashboard';
const CONFIG_SECRET = 'config-client-secret-abcdefghijklmnopqrstuvwxyz';

interface Tap {
  teardown(fn: () => unknown): void;
  testdir(): string;
}

interface Started {
  gateway: Gateway;
  issuer: string;
  mcpUrl: string;
  audit: Array<Record<string, unknown>>;
}

/** A gateway with bearer (admin and non-admin tokens) + oauth_as, a pre-registered confidential client, a file store. */
async function start(t: Tap): Promise<Started> {
  const port = await freePort();
  const dir = t.testdir();
  const issuer = `http://127.0.0.1:${port}`;
  const doc = {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: {
      providers: ['bearer', 'oauth_as'],
      bearer: { tokens: { [ADMIN_TOKEN]: { subject: 'ops', roles: ['admin'] }, [DEV_TOKEN]: { subject: 'dev', roles: ['dev'] } } },
      oauthAs: {
        issuerUrl: issuer,
        jwtSecret: JWT_SECRET,
        trustedSourceCidrs: ['127.0.0.1/32'],
        clients: [{ client_id: CONFIG_CLIENT, client_name: 'Ops dashboard', redirect_uris: [REDIRECT], client_secret: CONFIG_SECRET }],
      },
    },
    acl: { default: 'allow', rules: [] },
    stateStore: { type: 'file', path: join(dir, 'auth_server.json') },
  };
  const env = { PATH: process.env.PATH, HOME: process.env.HOME };
  const { config } = parseConfigText(JSON.stringify(doc), 'admin-api servers.json', dir, env);
  const audit: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          if (parsed.audit) audit.push(parsed);
        } catch {
          // not a log line
        }
      }
      callback();
    },
  });
  const logger = createLogger({ level: 'info', destination });
  const gateway = await Gateway.start({ config, host: '127.0.0.1', port, logger, env });
  t.teardown(() => gateway.close());
  await gateway.ready();
  return { gateway, issuer, mcpUrl: `${issuer}/mcp`, audit };
}

interface User {
  provider: HeadlessOAuthProvider;
  clientId: string;
  access: string;
  refresh: string;
}

/** One user through the SDK's OAuth flow (DCR → authorize with consent → token); same metadata = same client. */
async function signIn(t: Tap, mcpUrl: string, user: string, clientName = 'Gatehouse test client'): Promise<User> {
  const provider = new HeadlessOAuthProvider({ user, groups: ['staff'] }, REDIRECT, { client_name: clientName });
  const client = await connectWithOAuth(mcpUrl, provider);
  t.teardown(() => client.close());
  return { provider, clientId: provider.client!.client_id, access: provider.savedTokens!.access_token, refresh: provider.savedTokens!.refresh_token! };
}

async function api(issuer: string, method: 'GET' | 'DELETE' | 'POST', path: string, token: string | null = ADMIN_TOKEN) {
  const res = await request(`${issuer}/admin/api${path}`, { method, headers: token ? bearer(token) : {} });
  const text = await res.body.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // asserted by the caller
  }
  return { status: res.statusCode, headers: res.headers, text, body };
}

/** GET /oauth/authorize as the user behind the trusted proxy, without answering any consent page. */
async function authorizeOnce(issuer: string, clientId: string, user: string) {
  const { challenge } = pkce();
  const url = authorizeUrl(issuer, {
    response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: challenge,
    code_challenge_method: 'S256', state: 'st', resource: `${issuer}/mcp`,
  });
  const res = await request(url, { headers: { 'x-forwarded-user': user } });
  return { status: res.statusCode, location: res.headers.location as string | undefined, body: await res.body.text() };
}

const enc = encodeURIComponent;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

t.test('list clients and sessions; authentication and the admin role', async (t) => {
  const { issuer, mcpUrl, audit } = await start(t);
  const ada = await signIn(t, mcpUrl, 'ada@example.com');
  const bob = await signIn(t, mcpUrl, 'bob@example.com');
  const carol = await signIn(t, mcpUrl, 'carol@example.com', 'Another client');
  t.equal(bob.clientId, ada.clientId, 'an identical registration is reused: two users of one client');
  t.not(carol.clientId, ada.clientId);

  const list = await api(issuer, 'GET', '/clients');
  t.equal(list.status, 200, list.text);
  t.equal(list.headers['content-type'], 'application/json');
  t.equal(list.headers['cache-control'], 'no-store');
  const clients = list.body.clients as Array<Record<string, unknown>>;
  t.same(clients.map((c) => c.client_id), [CONFIG_CLIENT, ...[ada.clientId, carol.clientId].sort()], 'config clients first, then registered ones');
  const shared = clients.find((c) => c.client_id === ada.clientId)!;
  t.match(shared, { client_name: 'Gatehouse test client', source: 'dcr', created: ISO, last_used: ISO, consented_users: ['ada@example.com', 'bob@example.com'], active_sessions: 2 });
  t.match(clients.find((c) => c.client_id === carol.clientId), { client_name: 'Another client', consented_users: ['carol@example.com'], active_sessions: 1 });
  t.same(clients.find((c) => c.client_id === CONFIG_CLIENT), {
    client_id: CONFIG_CLIENT, client_name: 'Ops dashboard', source: 'config', created: null, last_used: null, consented_users: [], active_sessions: 0,
  }, 'pre-registered clients are listed');
  t.notMatch(list.text, /secret|hash/i, 'no secret or hash in the listing');

  const shown = await api(issuer, 'GET', `/clients/${enc(ada.clientId)}`);
  t.equal(shown.status, 200);
  t.match(shown.body, {
    client_id: ada.clientId, source: 'dcr', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_method: 'none', confidential: false, consented_users: ['ada@example.com', 'bob@example.com'], active_sessions: 2,
  });
  const config = await api(issuer, 'GET', `/clients/${CONFIG_CLIENT}`);
  t.match(config.body, { source: 'config', token_endpoint_auth_method: 'client_secret_basic', confidential: true, redirect_uris: [REDIRECT] });
  t.notOk(config.text.includes(CONFIG_SECRET), 'the secret is never shown');
  t.notMatch(config.text, /"client_secret"|secret_hash|hash"/, 'nor its hash');

  const sessions = await api(issuer, 'GET', '/sessions');
  t.equal(sessions.status, 200);
  const all = sessions.body.sessions as Array<Record<string, unknown>>;
  t.equal(all.length, 3);
  for (const s of all) {
    t.match(s, { sid: String, client_id: String, subject: String, created: ISO, expires: ISO, last_used: ISO });
    t.ok(Date.parse(s.expires as string) > Date.now(), 'expires in the future');
  }
  t.notMatch(sessions.text, /generation|refresh_token/, 'nothing that could rebuild a token');
  const ofClient = await api(issuer, 'GET', `/sessions?client_id=${enc(ada.clientId)}`);
  t.same((ofClient.body.sessions as Array<{ subject: string }>).map((s) => s.subject).sort(), ['ada@example.com', 'bob@example.com']);
  const ofCarol = await api(issuer, 'GET', `/sessions?subject=${enc('carol@example.com')}`);
  t.same((ofCarol.body.sessions as Array<{ client_id: string }>).map((s) => s.client_id), [carol.clientId]);
  const both = await api(issuer, 'GET', `/sessions?client_id=${enc(carol.clientId)}&subject=${enc('ada@example.com')}`);
  t.same(both.body.sessions, [], 'both filters apply');

  // Authentication: the same challenge as /mcp; the admin role is required.
  const mcpChallenge = (await probeMcp(mcpUrl, {})).challenge;
  const anonymous = await api(issuer, 'GET', '/clients', null);
  t.equal(anonymous.status, 401);
  t.equal(anonymous.headers['www-authenticate'], mcpChallenge, 'the /mcp challenge');
  t.match(anonymous.headers['www-authenticate'], /^Bearer resource_metadata="/);
  t.equal(anonymous.body.error, 'unauthorized');
  const forged = await api(issuer, 'GET', '/clients', 'not-a-known-token');
  t.equal(forged.status, 401);
  t.match(forged.headers['www-authenticate'], /error="invalid_token"/);
  const dev = await api(issuer, 'GET', '/clients', DEV_TOKEN);
  t.equal(dev.status, 403);
  t.match(dev.body, { error: 'forbidden', error_description: /admin/ });
  const oauthUser = await api(issuer, 'DELETE', `/clients/${enc(ada.clientId)}`, ada.access);
  t.equal(oauthUser.status, 403, 'an OAuth user without the admin role cannot delete its own client');
  t.equal((await probeMcp(mcpUrl, bearer(ada.access))).status, 200, 'nothing was deleted');

  // Errors.
  const unknown = await api(issuer, 'GET', '/clients/no-such-client');
  t.equal(unknown.status, 404);
  t.match(unknown.body, { error: 'not_found', error_description: /no-such-client/ });
  const url = await api(issuer, 'GET', `/clients/${enc('https://app.example.com/oauth/client.json')}`);
  t.equal(url.status, 404);
  t.match(url.body.error_description, /"https:\/\/app\.example\.com\/oauth\/client\.json"/, 'path segments are percent-decoded (https client ids)');
  const preRegistered = await api(issuer, 'DELETE', `/clients/${CONFIG_CLIENT}`);
  t.equal(preRegistered.status, 409);
  t.match(preRegistered.body.error_description, /pre-registered.*remove it there/);
  t.equal((await api(issuer, 'DELETE', '/sessions/no-such-sid')).status, 404);
  t.equal((await api(issuer, 'POST', '/clients')).status, 405);
  t.equal((await api(issuer, 'GET', '/nothing-here')).status, 404);
  t.equal((await api(issuer, 'GET', '/clients/%E0%A4%A')).status, 400, 'malformed percent-encoding');

  const denied = audit.find((l) => l.event === 'admin' && l.decision === 'deny');
  t.match(denied, { admin: 'dev', via: 'bearer' }, 'refusals are audited with the caller');
  t.ok(audit.some((l) => l.event === 'admin' && l.action === 'list_clients' && l.admin === 'ops'), 'reads are audited with the admin');
});

t.test('revoke a session: that token dies within seconds, its refresh token is refused, others keep working', async (t) => {
  const { issuer, mcpUrl, audit } = await start(t);
  const ada = await signIn(t, mcpUrl, 'ada@example.com');
  const bob = await signIn(t, mcpUrl, 'bob@example.com');
  // Warm the provider's revocation cache with a positive answer, as a client in use would.
  t.equal((await probeMcp(mcpUrl, bearer(ada.access))).status, 200);

  const mine = await api(issuer, 'GET', `/sessions?subject=${enc('ada@example.com')}`);
  const [session] = mine.body.sessions as Array<{ sid: string }>;
  const revoked = await api(issuer, 'DELETE', `/sessions/${enc(session!.sid)}`);
  t.equal(revoked.status, 200, revoked.text);
  t.same(revoked.body, { revoked: session!.sid, client_id: ada.clientId, subject: 'ada@example.com' });
  const started = Date.now();
  const probe = await waitUntilRefused(mcpUrl, ada.access);
  t.equal(probe.status, 401, 'the access token is refused');
  t.ok(Date.now() - started < 3500, `within ~3 s (took ${Date.now() - started} ms)`);
  t.match(probe.challenge, /error="invalid_token"/);
  t.equal((await probeMcp(mcpUrl, bearer(bob.access))).status, 200, 'the other user keeps working');

  const refreshed = await refresh(issuer, ada.clientId, ada.refresh);
  t.equal(refreshed.status, 400);
  t.equal(refreshed.json.error, 'invalid_grant', 'the refresh token is refused');
  t.equal((await refresh(issuer, bob.clientId, bob.refresh)).status, 200, 'the other user can still refresh');

  t.equal((await api(issuer, 'DELETE', `/sessions/${enc(session!.sid)}`)).status, 404, 'a second revocation: unknown');
  t.same(((await api(issuer, 'GET', '/sessions')).body.sessions as Array<{ subject: string }>).map((s) => s.subject), ['bob@example.com'], 'only bob\'s session is left');
  t.match(audit.find((l) => l.action === 'revoke_session'), { event: 'admin', admin: 'ops', sid: session!.sid, clientId: ada.clientId, subject: 'ada@example.com' }, 'audited');
});

t.test('revoke consent: that user\'s sessions of that client go, the registration stays, consent is asked again', async (t) => {
  const { issuer, mcpUrl, audit } = await start(t);
  const ada = await signIn(t, mcpUrl, 'ada@example.com');
  const bob = await signIn(t, mcpUrl, 'bob@example.com');
  const before = await authorizeOnce(issuer, ada.clientId, 'ada@example.com');
  t.equal(before.status, 302, 'consent: first-use remembers the consent');
  t.match(before.location, /[?&]code=/);

  const res = await api(issuer, 'DELETE', `/clients/${enc(ada.clientId)}/consents/${enc('ada@example.com')}`);
  t.equal(res.status, 200, res.text);
  t.match(res.body, { client_id: ada.clientId, subject: 'ada@example.com', consent_removed: true });
  t.equal((res.body.sessions_revoked as string[]).length, 1, 'ada\'s session of this client');

  const left = (await api(issuer, 'GET', `/sessions?client_id=${enc(ada.clientId)}`)).body.sessions as Array<{ subject: string }>;
  t.same(left.map((s) => s.subject), ['bob@example.com'], 'only bob\'s session is left');
  const shown = await api(issuer, 'GET', `/clients/${enc(ada.clientId)}`);
  t.equal(shown.status, 200, 'the registration is kept');
  t.same(shown.body.consented_users, ['bob@example.com']);

  t.equal((await waitUntilRefused(mcpUrl, ada.access)).status, 401, 'ada\'s access token dies');
  t.equal((await probeMcp(mcpUrl, bearer(bob.access))).status, 200, 'bob keeps working');
  t.equal((await refresh(issuer, ada.clientId, ada.refresh)).json.error, 'invalid_grant');

  const after = await authorizeOnce(issuer, ada.clientId, 'ada@example.com');
  t.equal(after.status, 200, 'the consent page is shown again');
  t.match(after.body, /<form/);
  t.match(after.body, /Gatehouse test client/);
  t.equal((await authorizeOnce(issuer, ada.clientId, 'bob@example.com')).status, 302, 'bob\'s consent is untouched');

  const again = await api(issuer, 'DELETE', `/clients/${enc(ada.clientId)}/consents/${enc('ada@example.com')}`);
  t.equal(again.status, 404);
  t.match(again.body.error_description, /has no consent/);
  t.equal((await api(issuer, 'DELETE', `/clients/nope/consents/ada`)).status, 404);
  t.match(audit.find((l) => l.action === 'revoke_consent'), { admin: 'ops', clientId: ada.clientId, subject: 'ada@example.com', consentRemoved: true });
});

t.test('delete a client: its tokens die, its users get the unknown-client page, other clients keep working', async (t) => {
  const { issuer, mcpUrl, audit } = await start(t);
  const ada = await signIn(t, mcpUrl, 'ada@example.com');
  const bob = await signIn(t, mcpUrl, 'bob@example.com');
  const carol = await signIn(t, mcpUrl, 'carol@example.com', 'Another client');

  const res = await api(issuer, 'DELETE', `/clients/${enc(ada.clientId)}`);
  t.equal(res.status, 200, res.text);
  t.match(res.body, { client_id: ada.clientId, source: 'dcr', registration_deleted: true, consents_removed: ['ada@example.com', 'bob@example.com'] });
  t.equal((res.body.sessions_revoked as string[]).length, 2);

  const started = Date.now();
  t.equal((await waitUntilRefused(mcpUrl, ada.access)).status, 401, 'ada\'s access token dies');
  t.ok(Date.now() - started < 3500, `within ~3 s (took ${Date.now() - started} ms)`);
  t.equal((await waitUntilRefused(mcpUrl, bob.access)).status, 401, 'and bob\'s');
  t.equal((await probeMcp(mcpUrl, bearer(carol.access))).status, 200, 'another client keeps working');
  const refreshed = await refresh(issuer, ada.clientId, ada.refresh);
  t.equal(refreshed.json.error, 'invalid_client', 'the client is unknown at the token endpoint');

  const page = await authorizeOnce(issuer, ada.clientId, 'ada@example.com');
  t.equal(page.status, 400);
  t.match(page.body, /This application is not registered here/, 'the unknown-client page');

  t.equal((await api(issuer, 'GET', `/clients/${enc(ada.clientId)}`)).status, 404);
  t.equal((await api(issuer, 'DELETE', `/clients/${enc(ada.clientId)}`)).status, 404, 'a second delete: unknown');
  const remaining = (await api(issuer, 'GET', '/clients')).body.clients as Array<{ client_id: string }>;
  t.same(remaining.map((c) => c.client_id), [CONFIG_CLIENT, carol.clientId]);
  t.match(audit.find((l) => l.action === 'delete_client'), { admin: 'ops', via: 'bearer', clientId: ada.clientId, registrationDeleted: true });
});

t.test('without the Authorization Server the admin API answers 404 with a reason', async (t) => {
  const { url } = await startGateway(t, {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: { providers: ['bearer'], bearer: { tokens: { [ADMIN_TOKEN]: { subject: 'ops', roles: ['admin'] } } } },
  });
  const res = await request(`${url}/admin/api/clients`, { headers: bearer(ADMIN_TOKEN) });
  const body = (await res.body.json()) as Record<string, string>;
  t.equal(res.statusCode, 404);
  t.match(body, { error: 'not_found', error_description: /Authorization Server.*not configured.*oauth_as/ });
});

t.test('AuthAdmin on a store: metadata-document clients, expired sessions, pre-registered clients', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const now = Date.now();
  const cimd = 'https://app.example.com/oauth/client.json';
  const session = (sid: string, clientId: string, subject: string, idleExpiresAt: number): SessionRecord => ({
    sid, clientId, subject, groups: [], scope: 'mcp', resource: 'http://gw/mcp', generation: 0,
    rotatedAt: now - 1000, createdAt: now - 5000, lastUsedAt: now - 1000, idleExpiresAt, absoluteExpiresAt: now + 90_000,
  });
  await store.put('sessions', 's1', session('s1', cimd, 'ada', now + 60_000));
  await store.put('sessions', 's2', session('s2', cimd, 'bob', now - 1), 60);
  await store.put('consents', JSON.stringify([cimd, 'ada']), { scopes: ['mcp'], grantedAt: now - 6000 });
  const admin = new AuthAdmin({
    store,
    preRegistered: () => [{ client_id: 'cfg', redirect_uris: [REDIRECT], grant_types: ['authorization_code'], token_endpoint_auth_method: 'none', client_id_issued_at: 0, createdAt: 0, source: 'config' }],
  });

  const clients = await admin.listClients();
  t.same(clients.map((c) => [c.client_id, c.source]), [['cfg', 'config'], [cimd, 'cimd']]);
  t.match(clients[1], { client_name: null, consented_users: ['ada'], active_sessions: 1, created: new Date(now - 6000).toISOString() }, 'an idle-expired session is not counted');
  t.same((await admin.listSessions()).map((s) => s.sid), ['s1'], 'expired families are not listed');
  t.match(await admin.showClient(cimd), { redirect_uris: [], token_endpoint_auth_method: null });
  await t.rejects(admin.revokeSession('s2'), new AdminError(404, 'not_found', 'no session "s2" (unknown, expired or already revoked)'), 'an expired session counts as gone');
  await t.rejects(admin.deleteClient('cfg'), { name: 'AdminError', message: /pre-registered/ });

  const deleted = await admin.deleteClient(cimd);
  t.same(deleted, { client_id: cimd, source: 'cimd', registration_deleted: false, consents_removed: ['ada'], sessions_revoked: ['s1', 's2'] });
  t.same(await admin.listClients().then((c) => c.map((x) => x.client_id)), ['cfg'], 'nothing is left of the metadata-document client');
  await t.rejects(admin.deleteClient(cimd), { name: 'AdminError', message: /no client/ });
});
