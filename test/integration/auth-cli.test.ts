/**
 * `mcp auth ...` end to end with the real CLI binary: against a running `mcp serve` (spawned, file
 * store) through its admin API, then directly on the file store once the server is stopped, and the
 * change made there is honoured by the restarted server.
 */
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURE_SERVER } from '../helpers/gateway.js';
import { freePort } from '../helpers/oauth.js';
import { JWT_SECRET, REDIRECT, obtainTokens, probeMcp, bearer, refresh, registerClient, waitUntilRefused } from '../helpers/oauth-as.js';
import { runCli, serveCli, type CliRun, type ServedCli } from '../helpers/cli.js';

const ADMIN_TOKEN = 'auth-cli-admin-token-00000000000000';
const DEV_TOKEN = 'auth-cli-dev-token-0000000000000000';
const CONFIG_CLIENT = 'ops-dashboard';

type Run = CliRun;

const mcp = runCli;

function serve(t: { teardown(fn: () => unknown): void }, configPath: string, port: number): Promise<ServedCli> {
  return serveCli(t, configPath, `127.0.0.1:${port}`);
}

function writeConfig(dir: string, port: number, withAs = true): string {
  const path = join(dir, withAs ? 'servers.json' : 'plain.json');
  const serverAuth = withAs
    ? {
        providers: ['bearer', 'oauth_as'],
        bearer: { tokens: { [ADMIN_TOKEN]: { subject: 'ops', roles: ['admin'] }, [DEV_TOKEN]: { subject: 'dev', roles: ['dev'] } } },
        oauthAs: {
          issuerUrl: `http://127.0.0.1:${port}`,
          jwtSecret: JWT_SECRET,
          trustedSourceCidrs: ['127.0.0.1/32'],
          clients: [{ client_id: CONFIG_CLIENT, client_name: 'Ops dashboard', redirect_uris: [REDIRECT] }],
        },
      }
    : { providers: ['bearer'], bearer: { tokens: { [ADMIN_TOKEN]: { subject: 'ops', roles: ['admin'] } } } };
  writeFileSync(path, JSON.stringify({
    mcpServers: { fx: { command: process.execPath, args: [FIXTURE_SERVER, 'stdio'] } },
    serverAuth,
    acl: { default: 'allow', rules: [] },
    stateStore: { type: 'file', path: join(dir, 'auth_server.json') },
  }));
  return path;
}

/** Exit 1, one line on stderr matching `message`, nothing on stdout, no stack trace. */
function failsWith(t: Test, run: Run, message: RegExp, what: string): void {
  t.equal(run.code, 1, `${what}: exit 1`);
  t.match(run.stderr, message, `${what}: says why`);
  t.equal(run.stderr.trim().split('\n').length, 1, `${what}: one line (${run.stderr.trim()})`);
  t.notMatch(run.stderr, /\n\s+at /, `${what}: no stack trace`);
  t.equal(run.stdout, '', `${what}: nothing on stdout`);
}

/** Rows of a table as arrays of cells, checking that every cell starts at its header's column. */
function parseTable(t: Test, text: string): Array<Record<string, string>> {
  const [header, ...rows] = text.trimEnd().split('\n');
  const names = header!.split(/ {2,}/);
  const starts = names.map((n) => header!.indexOf(n));
  return rows.map((row) => {
    const record: Record<string, string> = {};
    names.forEach((name, i) => {
      const cell = row.slice(starts[i], i + 1 < starts.length ? starts[i + 1] : undefined);
      if (i > 0) t.equal(row[starts[i]! - 1], ' ', `column ${name} is aligned`);
      record[name] = cell.trim();
    });
    return record;
  });
}

t.test('mcp auth against a running server, then directly on the stopped server\'s file store', async (t) => {
  const dir = t.testdir();
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const configPath = writeConfig(dir, port);
  const served = await serve(t, configPath, port);
  const url = ['--url', issuer];
  const env = { MCP_ADMIN_TOKEN: ADMIN_TOKEN };

  // Four users: ada, bob and dave on one client, carol on another.
  const ada = await obtainTokens(issuer, undefined, { user: 'ada@example.com' });
  const clientA = ada.clientId;
  const bob = await obtainTokens(issuer, clientA, { user: 'bob@example.com' });
  const dave = await obtainTokens(issuer, clientA, { user: 'dave@example.com' });
  const clientC = await registerClient(issuer, { client_name: 'Other client' });
  const carol = await obtainTokens(issuer, clientC, { user: 'carol@example.com' });

  // Read-only commands, run side by side.
  const [listed, listedJsonRun, shown, shownJsonRun, sessions, ofARun, ofCarolRun, none] = await Promise.all([
    mcp(['auth', 'clients', 'list', ...url], env),
    mcp(['auth', 'clients', 'list', ...url, '--json'], env),
    mcp(['auth', 'clients', 'show', clientA, ...url], env),
    mcp(['auth', 'clients', 'show', clientA, ...url, '--json'], env),
    mcp(['auth', 'sessions', 'list', ...url], env),
    mcp(['auth', 'sessions', 'list', ...url, '--client', clientA, '--json'], env),
    mcp(['auth', 'sessions', 'list', ...url, '--subject', 'carol@example.com'], env),
    mcp(['auth', 'sessions', 'list', ...url, '--subject', 'nobody'], env),
  ]);

  // clients list: a table, and the API's JSON with --json.
  t.equal(listed.code, 0, listed.stderr);
  t.equal(listed.stderr, '');
  const rows = parseTable(t, listed.stdout);
  t.same(rows.map((r) => r['CLIENT ID']), [CONFIG_CLIENT, ...[clientA, clientC].sort()]);
  t.match(rows.find((r) => r['CLIENT ID'] === clientA), { NAME: 'Adversarial test client', SOURCE: 'dcr', SESSIONS: '3', 'CONSENTED USERS': 'ada@example.com, bob@example.com, dave@example.com', CREATED: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/ });
  t.match(rows.find((r) => r['CLIENT ID'] === CONFIG_CLIENT), { NAME: 'Ops dashboard', SOURCE: 'config', CREATED: '-', 'LAST USED': '-', SESSIONS: '0', 'CONSENTED USERS': '-' });
  const listedJson = listedJsonRun;
  t.equal(listedJson.code, 0);
  const doc = JSON.parse(listedJson.stdout) as { clients: Array<Record<string, unknown>> };
  t.match(doc.clients.find((c) => c.client_id === clientC), { client_name: 'Other client', source: 'dcr', consented_users: ['carol@example.com'], active_sessions: 1 });

  // clients show
  t.equal(shown.code, 0, shown.stderr);
  t.match(shown.stdout, new RegExp(`^client id +${clientA}$`, 'm'));
  t.match(shown.stdout, /^redirect uris +http:\/\/127\.0\.0\.1:43210\/callback$/m);
  t.match(shown.stdout, /^grant types +authorization_code, refresh_token$/m);
  t.match(shown.stdout, /^auth method +none$/m);
  t.match(shown.stdout, /^active sessions +3$/m);
  const shownJson = JSON.parse(shownJsonRun.stdout) as Record<string, unknown>;
  t.match(shownJson, { client_id: clientA, redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' });

  // sessions list, with filters
  t.equal(sessions.code, 0, sessions.stderr);
  const sessionRows = parseTable(t, sessions.stdout);
  t.equal(sessionRows.length, 4);
  t.same(Object.keys(sessionRows[0]!), ['SID', 'CLIENT ID', 'SUBJECT', 'CREATED', 'EXPIRES', 'LAST USED']);
  const ofA = JSON.parse(ofARun.stdout) as { sessions: Array<{ sid: string; subject: string }> };
  t.same(ofA.sessions.map((s) => s.subject).sort(), ['ada@example.com', 'bob@example.com', 'dave@example.com']);
  const ofCarol = parseTable(t, ofCarolRun.stdout);
  t.same(ofCarol.map((r) => r['CLIENT ID']), [clientC]);
  t.equal(none.stdout, 'no sessions\n');

  // sessions revoke: ada's access token dies within seconds, the others keep working.
  const adaSid = ofA.sessions.find((s) => s.subject === 'ada@example.com')!.sid;
  const revoked = await mcp(['auth', 'sessions', 'revoke', adaSid, ...url], env);
  t.equal(revoked.code, 0, revoked.stderr);
  t.match(revoked.stdout, new RegExp(`^revoked session ${adaSid} \\(client ${clientA}, subject ada@example\\.com\\)`));
  t.equal((await waitUntilRefused(`${issuer}/mcp`, ada.tokens.access_token)).status, 401, 'ada\'s token is refused');
  t.equal((await probeMcp(`${issuer}/mcp`, bearer(dave.tokens.access_token))).status, 200, 'dave keeps working');

  // clients revoke-consent: bob's session goes, the client stays.
  const consent = await mcp(['auth', 'clients', 'revoke-consent', clientA, 'bob@example.com', ...url], env);
  t.equal(consent.code, 0, consent.stderr);
  t.match(consent.stdout, /^revoked the consent of bob@example\.com to client .*; 1 session revoked\. The registration is kept/);
  t.equal((await refresh(issuer, clientA, bob.tokens.refresh_token)).json.error, 'invalid_grant', 'bob\'s refresh token is refused');

  // clients delete (JSON answer)
  const deleted = await mcp(['auth', 'clients', 'delete', clientC, ...url, '--json'], env);
  t.equal(deleted.code, 0, deleted.stderr);
  t.match(JSON.parse(deleted.stdout), { client_id: clientC, registration_deleted: true, consents_removed: ['carol@example.com'], sessions_revoked: [String] });
  t.equal((await waitUntilRefused(`${issuer}/mcp`, carol.tokens.access_token)).status, 401, 'carol\'s token is refused');
  t.ok(served.lines.some((l) => l.event === 'admin' && l.action === 'delete_client' && l.admin === 'ops' && l.clientId === clientC), 'the server audit-logged the deletion');

  // Errors: one line, exit 1 (independent invocations, run side by side).
  const [unknownClient, unknownSession, preRegistered, badToken, nonAdmin, noToken, bothModes, noMode] = await Promise.all([
    mcp(['auth', 'clients', 'show', 'no-such-client', ...url], env),
    mcp(['auth', 'sessions', 'revoke', 'no-such-sid', ...url], env),
    mcp(['auth', 'clients', 'delete', CONFIG_CLIENT, ...url], env),
    mcp(['auth', 'clients', 'list', ...url], { MCP_ADMIN_TOKEN: 'wrong-token' }),
    mcp(['auth', 'clients', 'list', ...url, '--token', DEV_TOKEN]),
    mcp(['auth', 'clients', 'list', ...url]),
    mcp(['auth', 'clients', 'list', ...url, '--config', configPath], env),
    mcp(['auth', 'clients', 'list'], env),
  ]);
  failsWith(t, unknownClient, /^mcp auth: no client "no-such-client" \(HTTP 404\)$/m, 'unknown client');
  failsWith(t, unknownSession, /no session "no-such-sid"/, 'unknown session');
  failsWith(t, preRegistered, /pre-registered .*\(HTTP 409\)/, 'pre-registered client');
  failsWith(t, badToken, /refused the admin token \(401/, 'bad token');
  failsWith(t, nonAdmin, /lacks the "admin" role \(403\)/, 'non-admin token');
  failsWith(t, noToken, /needs an admin bearer token/, 'no token');
  failsWith(t, bothModes, /either --url .* or --config/, 'both modes');
  failsWith(t, noMode, /--url URL .* or --config FILE/, 'no mode');

  // Stop the server: its admin API is unreachable, the store is used directly.
  served.child.kill('SIGTERM');
  t.equal(await served.exited, 0, 'the server stopped cleanly');
  failsWith(t, await mcp(['auth', 'clients', 'list', ...url], env), /cannot reach the gateway at http:\/\/127\.0\.0\.1:\d+: connection refused/, 'unreachable server');

  const direct = await mcp(['auth', 'clients', 'list', '--config', configPath]);
  t.equal(direct.code, 0, direct.stderr);
  t.equal(direct.stderr, '', 'no warning for a read');
  const directRows = parseTable(t, direct.stdout);
  t.same(directRows.map((r) => r['CLIENT ID']), [CONFIG_CLIENT, clientA], 'the deleted client is gone from the file');
  t.match(directRows[1], { SESSIONS: '1', 'CONSENTED USERS': 'ada@example.com, dave@example.com' }, 'ada\'s consent stays (only her session was revoked)');
  const directSessions = JSON.parse((await mcp(['auth', 'sessions', 'list', '--config', configPath, '--json'])).stdout) as { sessions: Array<{ sid: string; subject: string }> };
  t.same(directSessions.sessions.map((s) => s.subject), ['dave@example.com']);
  const directRevoke = await mcp(['auth', 'sessions', 'revoke', directSessions.sessions[0]!.sid, '--config', configPath]);
  t.equal(directRevoke.code, 0, directRevoke.stderr);
  t.match(directRevoke.stderr, /warning: changing the state store file .*auth_server\.json directly\. The gateway must be stopped/, 'a mutation warns that the server must be stopped');
  t.match(directRevoke.stdout, /^revoked session /);
  t.equal((await mcp(['auth', 'sessions', 'list', '--config', configPath])).stdout, 'no sessions\n');
  const [directUnknown, missingConfig, noAs] = await Promise.all([
    mcp(['auth', 'clients', 'show', 'nope', '--config', configPath]),
    mcp(['auth', 'clients', 'list', '--config', join(dir, 'missing.json')]),
    mcp(['auth', 'clients', 'list', '--config', writeConfig(dir, port, false)]),
  ]);
  failsWith(t, directUnknown, /^mcp auth: no client "nope"$/m, 'direct: unknown client');
  failsWith(t, missingConfig, /cannot read config file .*missing\.json: no such file/, 'direct: missing config');
  failsWith(t, noAs, /no Authorization Server is configured/, 'direct: no AS');

  // The restarted server honours what was done on the file.
  const again = await serve(t, configPath, port);
  t.equal((await refresh(issuer, clientA, dave.tokens.refresh_token)).json.error, 'invalid_grant', 'dave\'s session revoked on the file stays revoked');
  const after = await mcp(['auth', 'sessions', 'list', ...url], env);
  t.equal(after.stdout, 'no sessions\n');
  again.child.kill('SIGTERM');
  await again.exited;
});
