import { access } from 'node:fs/promises';
import { Command } from 'commander';
import { Agent, request } from 'undici';
import { loadConfig } from '../config/load.js';
import { ConfigError, UserError } from '../errors.js';
import { silentLogger } from '../log.js';
import {
  AdminError,
  AuthAdmin,
  type ClientDetails,
  type ClientSummary,
  type DeletedClient,
  type RevokedConsent,
  type RevokedSession,
  type SessionFilter,
  type SessionSummary,
} from '../oauth/admin.js';
import { ClientMetadataDocuments } from '../oauth/cimd.js';
import { ClientRegistry } from '../oauth/clients.js';
import { openStore, parseInlineSeed } from '../store/index.js';

/**
 * `mcp auth clients list|show|revoke-consent|delete` and `mcp auth sessions list|revoke`: operator
 * admin of the Authorization Server's state (DESIGN.md §3, §7 "Admin").
 *
 * Two ways to reach the state:
 * - `--url http://127.0.0.1:8080` plus an admin bearer token (`--token`, or `$MCP_ADMIN_TOKEN`,
 *   which keeps it out of `ps`): the running gateway's admin API (`/admin/api/*`). This is the way
 *   while the gateway runs, and on Redis it reaches every replica.
 * - `--config FILE`: the configured state store, opened directly, for a stopped gateway. With the
 *   file store this must not run while a gateway uses the file: a running gateway keeps the file's
 *   contents in memory, would not see the change and would overwrite it at its next write. There
 *   is no lock to detect that; mutating commands print a warning.
 *
 * Output: aligned tables (or `key value` lines for `show`) on stdout, `--json` for scripts (the
 * admin API's JSON, identical in both modes). Exit 0 on success, 1 with one line on stderr for any
 * user error (unknown id, 401/403, unreachable server, bad flags, config errors). Never a stack trace.
 */

export type AuthAction =
  | { kind: 'clients-list' }
  | { kind: 'clients-show'; clientId: string }
  | { kind: 'clients-revoke-consent'; clientId: string; subject: string }
  | { kind: 'clients-delete'; clientId: string }
  | { kind: 'sessions-list'; filter: SessionFilter }
  | { kind: 'sessions-revoke'; sid: string };

export interface AuthCliOptions {
  url?: string;
  token?: string;
  config?: string;
  json?: boolean;
  out?: NodeJS.WritableStream;
  err?: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
}

/** What both modes offer: `AuthAdmin` in process, or the same operations over the admin API. */
interface AdminTarget {
  listClients(): Promise<ClientSummary[]>;
  showClient(clientId: string): Promise<ClientDetails>;
  listSessions(filter: SessionFilter): Promise<SessionSummary[]>;
  revokeSession(sid: string): Promise<RevokedSession>;
  revokeConsent(clientId: string, subject: string): Promise<RevokedConsent>;
  deleteClient(clientId: string): Promise<DeletedClient>;
  /** Whether changes reach a running gateway (false: a stopped gateway's file store). */
  readonly live: boolean;
  readonly describe: string;
  close(): Promise<void>;
}

const MUTATIONS = new Set<AuthAction['kind']>(['clients-revoke-consent', 'clients-delete', 'sessions-revoke']);
const TIMEOUT_MS = 10_000;

/** Runs one `mcp auth` action; returns the exit code. */
export async function authCommand(action: AuthAction, options: AuthCliOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const err = options.err ?? process.stderr;
  let target: AdminTarget | undefined;
  try {
    target = await openTarget(options, !MUTATIONS.has(action.kind));
    if (MUTATIONS.has(action.kind) && !target.live) {
      err.write(`mcp auth: warning: changing ${target.describe} directly. The gateway must be stopped: a running gateway keeps this file in memory, would not see this change, and would overwrite it at its next write. For a running gateway use --url.\n`);
    }
    const result = await perform(target, action);
    out.write(options.json ? `${JSON.stringify(result, null, 2)}\n` : render(action, result, target.live));
    return 0;
  } catch (error) {
    if (error instanceof AdminError || error instanceof UserError || error instanceof ConfigError) {
      err.write(`mcp auth: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await target?.close();
  }
}

async function perform(target: AdminTarget, action: AuthAction): Promise<unknown> {
  switch (action.kind) {
    case 'clients-list':
      return { clients: await target.listClients() };
    case 'clients-show':
      return target.showClient(action.clientId);
    case 'clients-revoke-consent':
      return target.revokeConsent(action.clientId, action.subject);
    case 'clients-delete':
      return target.deleteClient(action.clientId);
    case 'sessions-list':
      return { sessions: await target.listSessions(action.filter) };
    case 'sessions-revoke':
      return target.revokeSession(action.sid);
  }
}

async function openTarget(options: AuthCliOptions, readOnly: boolean): Promise<AdminTarget> {
  const env = options.env ?? process.env;
  if (options.url && options.config) throw new UserError('use either --url (a running gateway) or --config (the store of a stopped gateway), not both');
  if (options.url) {
    const token = options.token || env.MCP_ADMIN_TOKEN;
    if (!token) throw new UserError('--url needs an admin bearer token: pass --token TOKEN or set MCP_ADMIN_TOKEN (a token whose identity has the "admin" role)');
    return new RemoteTarget(options.url, token);
  }
  if (options.config) return openLocalTarget(options.config, env, readOnly);
  throw new UserError('say where the state is: --url URL (a running gateway, with --token or MCP_ADMIN_TOKEN) or --config FILE (the store of a stopped gateway)');
}

// ---------------------------------------------------------------------------------------------
// Direct mode: the configured store of a stopped gateway

async function openLocalTarget(configPath: string, env: NodeJS.ProcessEnv, readOnly: boolean): Promise<AdminTarget> {
  const { config } = await loadConfig({ path: configPath, env });
  const source = config.sourcePath ?? configPath;
  const oauthAs = config.serverAuth.oauthAs;
  if (!oauthAs || !config.serverAuth.providers.includes('oauth_as')) {
    throw new UserError(`${source}: no Authorization Server is configured (serverAuth.providers has no "oauth_as"), so there are no clients or sessions to administer`);
  }
  const seedText = env.MCP_AUTH_SERVER_CONFIG;
  const seed = seedText ? parseInlineSeed(seedText) : { clients: [] };
  const inMemory = config.stateStore.type === 'memory' || (seedText !== undefined && seedText !== '' && !config.stateStore.configured);
  if (inMemory) {
    throw new UserError(`${source}: the state store is in memory: it exists only inside the running gateway. Use --url with an admin token instead`);
  }
  if (config.stateStore.type === 'file') {
    const filePath = config.stateStore.path ?? env.MCP_AUTH_SERVER_PATH;
    if (filePath) {
      try {
        await access(filePath);
      } catch {
        throw new UserError(`no state store file at ${filePath}: the gateway has not stored anything yet, or it runs with another stateStore.path or MCP_AUTH_SERVER_PATH`);
      }
    }
  }
  // Listing and showing write nothing, so they are safe next to a running gateway's file store.
  const store = await openStore(config.stateStore, { logger: silentLogger, env, readOnly });
  // The registry only supplies the pre-registered clients here; metadata documents are never fetched.
  const cimd = new ClientMetadataDocuments(oauthAs, () => false, silentLogger);
  const registry = new ClientRegistry(store, oauthAs, cimd, silentLogger, seed.clients);
  const admin = new AuthAdmin({ store, preRegistered: () => registry.preRegisteredClients() });
  const describe = store.kind === 'file' ? `the state store file ${config.stateStore.path ?? env.MCP_AUTH_SERVER_PATH}` : `the ${store.kind} state store`;
  return {
    listClients: () => admin.listClients(),
    showClient: (id) => admin.showClient(id),
    listSessions: (filter) => admin.listSessions(filter),
    revokeSession: (sid) => admin.revokeSession(sid),
    revokeConsent: (id, subject) => admin.revokeConsent(id, subject),
    deleteClient: (id) => admin.deleteClient(id),
    // A shared store (Redis) is what the running replicas read: changes reach them.
    live: store.kind !== 'file',
    describe,
    async close() {
      await cimd.close();
      await store.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Remote mode: the admin API of a running gateway

class RemoteTarget implements AdminTarget {
  readonly live = true;
  readonly describe: string;
  private readonly base: URL;
  /** The gateway's path prefix without a trailing slash ('' at the root). */
  private readonly basePath: string;
  private readonly agent = new Agent({ connect: { timeout: TIMEOUT_MS } });

  constructor(url: string, private readonly token: string) {
    let base: URL;
    try {
      base = new URL(url);
    } catch {
      throw new UserError(`--url ${JSON.stringify(url)} is not a URL (expected e.g. http://127.0.0.1:8080)`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UserError(`--url must be http:// or https:// (got ${base.protocol})`);
    // Accept the gateway's base URL, or its /mcp endpoint as users often have that one at hand.
    this.basePath = base.pathname.replace(/\/+$/, '').replace(/\/mcp$/, '');
    base.search = '';
    base.hash = '';
    this.base = base;
    this.describe = base.origin;
  }

  listClients(): Promise<ClientSummary[]> {
    return this.call<{ clients: ClientSummary[] }>('GET', ['clients']).then((r) => r.clients);
  }

  showClient(clientId: string): Promise<ClientDetails> {
    return this.call('GET', ['clients', clientId]);
  }

  listSessions(filter: SessionFilter): Promise<SessionSummary[]> {
    const query = new URLSearchParams();
    if (filter.clientId) query.set('client_id', filter.clientId);
    if (filter.subject) query.set('subject', filter.subject);
    return this.call<{ sessions: SessionSummary[] }>('GET', ['sessions'], query).then((r) => r.sessions);
  }

  revokeSession(sid: string): Promise<RevokedSession> {
    return this.call('DELETE', ['sessions', sid]);
  }

  revokeConsent(clientId: string, subject: string): Promise<RevokedConsent> {
    return this.call('DELETE', ['clients', clientId, 'consents', subject]);
  }

  deleteClient(clientId: string): Promise<DeletedClient> {
    return this.call('DELETE', ['clients', clientId]);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private async call<T>(method: 'GET' | 'DELETE', segments: string[], query?: URLSearchParams): Promise<T> {
    const url = new URL(this.base);
    url.pathname = `${this.basePath}/admin/api/${segments.map(encodeURIComponent).join('/')}`;
    if (query && [...query.keys()].length > 0) url.search = query.toString();
    let status: number;
    let text: string;
    try {
      const res = await request(url, {
        method,
        dispatcher: this.agent,
        headers: { authorization: `Bearer ${this.token}`, accept: 'application/json' },
        headersTimeout: TIMEOUT_MS,
        bodyTimeout: TIMEOUT_MS,
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (error) {
      throw new UserError(`cannot reach the gateway at ${this.describe}: ${networkReason(error)}`);
    }
    let body: { error?: unknown; error_description?: unknown } | undefined;
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = undefined;
    }
    if (status >= 200 && status < 300 && body !== undefined) return body as T;
    const description = typeof body?.error_description === 'string' ? body.error_description : undefined;
    if (status === 401) throw new UserError(`the gateway at ${this.describe} refused the admin token (401${description ? `: ${description}` : ''}); check --token or MCP_ADMIN_TOKEN`);
    if (status === 403) throw new UserError(`the gateway at ${this.describe} accepted the token but its identity lacks the "admin" role (403)`);
    if (description) throw new UserError(`${description} (HTTP ${status})`);
    throw new UserError(`unexpected answer from ${url.origin}${url.pathname}: HTTP ${status}${body === undefined ? ' (not JSON: is --url the gateway?)' : ''}`);
  }
}

function networkReason(error: unknown): string {
  const code = (error as { code?: string }).code ?? (error as { cause?: { code?: string } }).cause?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (is the gateway running, and is --url right?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return `no answer within ${TIMEOUT_MS / 1000} s`;
    default:
      return (error as Error).message || String(error);
  }
}

// ---------------------------------------------------------------------------------------------
// Text output

function render(action: AuthAction, result: unknown, live: boolean): string {
  const bites = live ? ' Access tokens already issued stop working within a few seconds.' : '';
  switch (action.kind) {
    case 'clients-list': {
      const { clients } = result as { clients: ClientSummary[] };
      if (clients.length === 0) return 'no clients\n';
      return table(['CLIENT ID', 'NAME', 'SOURCE', 'CREATED', 'LAST USED', 'SESSIONS', 'CONSENTED USERS'], clients.map((c) => [
        c.client_id, c.client_name ?? '-', c.source, when(c.created), when(c.last_used), String(c.active_sessions), c.consented_users.join(', ') || '-',
      ]));
    }
    case 'clients-show': {
      const c = result as ClientDetails;
      const rows: Array<[string, string | string[]]> = [
        ['client id', c.client_id],
        ['name', c.client_name ?? '-'],
        ['source', c.source],
        ['created', when(c.created)],
        ['last used', when(c.last_used)],
        ['auth method', c.token_endpoint_auth_method ?? '-'],
        ['confidential', c.confidential ? 'yes (secret not shown)' : 'no'],
        ['redirect uris', c.redirect_uris.length ? c.redirect_uris : c.source === 'cimd' ? '(from its metadata document)' : '-'],
        ['grant types', c.grant_types.join(', ') || '-'],
        ['scope', c.scope ?? '-'],
        ['client uri', c.client_uri ?? '-'],
        ['software', [c.software_id, c.software_version].filter(Boolean).join(' ') || '-'],
        ['consented users', c.consented_users.join(', ') || '-'],
        ['active sessions', String(c.active_sessions)],
      ];
      const width = Math.max(...rows.map(([k]) => k.length));
      return rows.map(([k, v]) => (Array.isArray(v) ? v : [v]).map((line, i) => `${(i === 0 ? k : '').padEnd(width)}  ${line}`).join('\n')).join('\n') + '\n';
    }
    case 'sessions-list': {
      const { sessions } = result as { sessions: SessionSummary[] };
      if (sessions.length === 0) return 'no sessions\n';
      return table(['SID', 'CLIENT ID', 'SUBJECT', 'CREATED', 'EXPIRES', 'LAST USED'], sessions.map((s) => [
        s.sid, s.client_id, s.subject, when(s.created), when(s.expires), when(s.last_used),
      ]));
    }
    case 'sessions-revoke': {
      const r = result as RevokedSession;
      return `revoked session ${r.revoked} (client ${r.client_id}, subject ${r.subject}): its refresh token is refused from now on.${bites}\n`;
    }
    case 'clients-revoke-consent': {
      const r = result as RevokedConsent;
      return `revoked the consent of ${r.subject} to client ${r.client_id}${r.consent_removed ? '' : ' (no consent was stored)'}; ${plural(r.sessions_revoked.length, 'session')} revoked. The registration is kept; the next sign-in asks for consent again.${bites}\n`;
    }
    case 'clients-delete': {
      const r = result as DeletedClient;
      const what = r.registration_deleted ? 'registration deleted' : 'no stored registration (a metadata-document client)';
      return `deleted client ${r.client_id}: ${what}, ${plural(r.consents_removed.length, 'consent')} and ${plural(r.sessions_revoked.length, 'session')} removed.${bites}\n`;
    }
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** ISO time without milliseconds (UTC), or '-'. */
function when(iso: string | null): string {
  return iso ? iso.replace(/\.\d{3}Z$/, 'Z') : '-';
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Commander wiring

interface TargetFlags {
  url?: string;
  token?: string;
  config?: string;
  json?: boolean;
}

function withTarget(command: Command): Command {
  return command
    .option('--url <url>', 'a running gateway, e.g. http://127.0.0.1:8080 (its admin API)')
    .option('--token <token>', 'admin bearer token for --url (default: $MCP_ADMIN_TOKEN, which keeps it out of the process list)')
    .option('--config <file>', 'servers.json of a STOPPED gateway: work directly on its state store')
    .option('--json', 'machine-readable output');
}

function runner(build: (...args: never[]) => AuthAction) {
  return async (...args: unknown[]) => {
    // commander passes the positional arguments, then the options, then the command.
    const flags = args[args.length - 2] as TargetFlags;
    process.exitCode = await authCommand(build(...(args.slice(0, -2) as never[])), flags);
  };
}

/** The `mcp auth` command group. */
export function authCommandGroup(): Command {
  const auth = new Command('auth').description('operator admin of the OAuth Authorization Server: clients, consents, sessions (--url for a running gateway, --config for a stopped one)');
  const clients = auth.command('clients').description('registered, pre-registered and metadata-document clients');
  withTarget(clients.command('list').description('list clients: source, created, last used, active sessions, consented users'))
    .action(runner(() => ({ kind: 'clients-list' })));
  withTarget(clients.command('show').argument('<client-id>').description('one client: redirect URIs, grant types, auth method (never its secret)'))
    .action(runner((clientId: string) => ({ kind: 'clients-show', clientId })));
  withTarget(clients.command('revoke-consent').argument('<client-id>').argument('<subject>').description('drop a user\'s consent to a client and that client\'s sessions for that user; keeps the registration'))
    .action(runner((clientId: string, subject: string) => ({ kind: 'clients-revoke-consent', clientId, subject })));
  withTarget(clients.command('delete').argument('<client-id>').description('delete a client: its registration, consents and sessions (pre-registered clients: remove them from the config)'))
    .action(runner((clientId: string) => ({ kind: 'clients-delete', clientId })));

  const sessions = auth.command('sessions').description('refresh-token sessions (one per authorization)');
  withTarget(sessions.command('list').description('list live sessions: client, subject, created, expires, last used'))
    .option('--client <client-id>', 'only this client\'s sessions')
    .option('--subject <subject>', 'only this user\'s sessions')
    .action(async (flags: TargetFlags & { client?: string; subject?: string }) => {
      process.exitCode = await authCommand({ kind: 'sessions-list', filter: { clientId: flags.client, subject: flags.subject } }, flags);
    });
  withTarget(sessions.command('revoke').argument('<sid>').description('revoke a session: its refresh token is refused, its access tokens stop working within seconds'))
    .action(runner((sid: string) => ({ kind: 'sessions-revoke', sid })));
  return auth;
}
