/**
 * Operator admin of the Authorization Server's state (DESIGN.md §7 "Admin"): list clients and
 * sessions, revoke a session, revoke a user's consent, delete a client.
 *
 * Everything here works on the `StateStore` alone (plus the read-only list of pre-registered
 * clients), so the same operations serve the HTTP admin API of a running gateway
 * (`src/http/admin-api.ts`) and the `mcp auth` CLI working directly on a stopped server's store
 * (`src/cli/auth.ts`). Nothing is cached here: every answer is read from the store, and every change
 * is written to it, so on Redis it takes effect on every replica at once. Already-issued access
 * tokens die through the `oauth_as` provider's revocation check (their session or client is gone),
 * which caches existence for ~2 s; refresh tokens are refused on their next use.
 *
 * Never returned: secrets or their hashes, tokens, the refresh generation.
 */
import type { SessionRecord, StateStore } from '../store/types.js';
import type { ClientRecord, TokenEndpointAuthMethod } from './clients.js';
import { consentKey, type ConsentRecord } from './authorize.js';

export type ClientSource = ClientRecord['source'];

/** One row of `listClients`. Times are ISO 8601 (UTC), `null` when unknown or never. */
export interface ClientSummary {
  client_id: string;
  client_name: string | null;
  source: ClientSource;
  /** Registration time; `null` for pre-registered clients (they come from the config) and metadata-document clients without state. */
  created: string | null;
  /** Last token issued to the client (code exchange or refresh), `null` if never. */
  last_used: string | null;
  /** Subjects that consented to this client, sorted. */
  consented_users: string[];
  /** Refresh-token families (sessions) still alive. */
  active_sessions: number;
}

/** `showClient`: the summary plus what the client is allowed to do (never its secret). */
export interface ClientDetails extends ClientSummary {
  /** Empty for a metadata-document client: its redirect URIs live in its document, fetched on use. */
  redirect_uris: string[];
  grant_types: string[];
  token_endpoint_auth_method: TokenEndpointAuthMethod | null;
  scope: string | null;
  client_uri: string | null;
  software_id: string | null;
  software_version: string | null;
  /** Whether the client authenticates with a secret (the secret itself is never shown). */
  confidential: boolean;
}

/** One refresh-token family. */
export interface SessionSummary {
  sid: string;
  client_id: string;
  subject: string;
  scope: string;
  created: string;
  /** When the family ends: the earlier of its sliding idle expiry and its absolute lifetime. */
  expires: string;
  /** Last refresh (or the code exchange that created it). */
  last_used: string;
}

export interface SessionFilter {
  clientId?: string;
  subject?: string;
}

export interface RevokedSession {
  revoked: string;
  client_id: string;
  subject: string;
}

export interface RevokedConsent {
  client_id: string;
  subject: string;
  consent_removed: boolean;
  /** sids of the sessions that were deleted. */
  sessions_revoked: string[];
}

export interface DeletedClient {
  client_id: string;
  source: ClientSource | null;
  /** False for a metadata-document client (nothing is stored about it but consents and sessions). */
  registration_deleted: boolean;
  consents_removed: string[];
  sessions_revoked: string[];
}

/** A refusal the caller can show as is: `status` maps to HTTP (404 unknown id, 409 not deletable). */
export class AdminError extends Error {
  constructor(readonly status: 400 | 404 | 409, readonly code: 'invalid_request' | 'not_found' | 'conflict', message: string) {
    super(message);
    this.name = 'AdminError';
  }
}

export interface AuthAdminOptions {
  store: StateStore;
  /** The pre-registered clients (config and MCP_AUTH_SERVER_CONFIG): `ClientRegistry.preRegisteredClients`. */
  preRegistered: () => readonly Readonly<ClientRecord>[];
  /** ms since epoch; injectable for tests. */
  clock?: () => number;
}

interface State {
  preRegistered: Map<string, Readonly<ClientRecord>>;
  stored: Map<string, ClientRecord>;
  /** Grouped by client id (listing 10,000 clients stays linear). */
  consents: Map<string, Array<{ subject: string; record: ConsentRecord }>>;
  sessions: Map<string, SessionRecord[]>;
}

/** Code-unit order: the same on every machine, whatever the locale. */
const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const iso = (ms: number | undefined): string | null => (ms === undefined || ms <= 0 ? null : new Date(ms).toISOString());

export class AuthAdmin {
  private readonly store: StateStore;
  private readonly preRegistered: () => readonly Readonly<ClientRecord>[];
  private readonly clock: () => number;

  constructor(options: AuthAdminOptions) {
    this.store = options.store;
    this.preRegistered = options.preRegistered;
    this.clock = options.clock ?? Date.now;
  }

  /**
   * Every client: pre-registered ones, stored (DCR) registrations, and metadata-document clients
   * (https client_ids) that have consents or sessions. Sorted by source then client_id.
   */
  async listClients(): Promise<ClientSummary[]> {
    const state = await this.load();
    const ids = new Set<string>([...state.preRegistered.keys(), ...state.stored.keys()]);
    for (const clientId of [...state.consents.keys(), ...state.sessions.keys()]) if (isMetadataDocumentId(clientId)) ids.add(clientId);
    const order: Record<ClientSource, number> = { config: 0, dcr: 1, cimd: 2 };
    return [...ids]
      .map((id) => this.summarise(id, state)!)
      .filter(Boolean)
      .sort((a, b) => order[a.source] - order[b.source] || compare(a.client_id, b.client_id));
  }

  /** One client with its redirect URIs, grants and auth method; `AdminError` 404 when unknown. */
  async showClient(clientId: string): Promise<ClientDetails> {
    const state = await this.load();
    const summary = this.summarise(clientId, state);
    if (!summary) throw unknownClient(clientId);
    const record = state.preRegistered.get(clientId) ?? state.stored.get(clientId);
    return {
      ...summary,
      redirect_uris: record ? [...record.redirect_uris] : [],
      grant_types: record ? [...record.grant_types] : ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: record?.token_endpoint_auth_method ?? null,
      scope: record?.scope ?? null,
      client_uri: record?.client_uri ?? null,
      software_id: record?.software_id ?? null,
      software_version: record?.software_version ?? null,
      confidential: Boolean(record?.client_secret_hash),
    };
  }

  /** Live sessions, optionally of one client and/or one subject; newest first. */
  async listSessions(filter: SessionFilter = {}): Promise<SessionSummary[]> {
    const sessions = await this.liveSessions();
    return sessions
      .filter((s) => (filter.clientId === undefined || s.clientId === filter.clientId) && (filter.subject === undefined || s.subject === filter.subject))
      .sort((a, b) => b.createdAt - a.createdAt || compare(a.sid, b.sid))
      .map(sessionSummary);
  }

  /** Deletes one refresh-token family: its refresh token is refused, its access tokens die within seconds. */
  async revokeSession(sid: string): Promise<RevokedSession> {
    const session = await this.store.get<SessionRecord>('sessions', sid);
    if (!session || !this.isLive(session)) throw new AdminError(404, 'not_found', `no session ${JSON.stringify(sid)} (unknown, expired or already revoked)`);
    await this.store.delete('sessions', sid);
    return { revoked: sid, client_id: session.clientId, subject: session.subject };
  }

  /**
   * Drops the user's consent to this client and that client's sessions for that user; the client's
   * registration stays. The next authorization of that user asks for consent again (`first-use`).
   */
  async revokeConsent(clientId: string, subject: string): Promise<RevokedConsent> {
    const key = consentKey(clientId, subject);
    const consent = await this.store.get<ConsentRecord>('consents', key);
    const sessions = (await this.liveSessions()).filter((s) => s.clientId === clientId && s.subject === subject);
    if (!consent && sessions.length === 0) {
      const known = (await this.summariseOne(clientId)) !== undefined;
      throw new AdminError(404, 'not_found', known
        ? `${JSON.stringify(subject)} has no consent and no session for client ${JSON.stringify(clientId)}`
        : `no client ${JSON.stringify(clientId)}, and no consent or session for it`);
    }
    // Sessions first: once the consent is gone nothing else points at them.
    for (const session of sessions) await this.store.delete('sessions', session.sid);
    if (consent) await this.store.delete('consents', key);
    return { client_id: clientId, subject, consent_removed: Boolean(consent), sessions_revoked: sessions.map((s) => s.sid) };
  }

  /**
   * Deletes a client: its registration, then its sessions and consents. Pre-registered clients are
   * refused (they come back from the config at the next start: remove them there). A
   * metadata-document client has no stored registration; its consents and sessions are deleted
   * (it can register again simply by being used, as its document is public).
   */
  async deleteClient(clientId: string): Promise<DeletedClient> {
    if (this.preRegisteredMap().has(clientId)) {
      throw new AdminError(409, 'conflict', `client ${JSON.stringify(clientId)} is pre-registered in the configuration (serverAuth.oauthAs.clients or MCP_AUTH_SERVER_CONFIG) and cannot be deleted here: remove it there and restart (or revoke its sessions and consents one by one)`);
    }
    const record = await this.store.get<ClientRecord>('clients', clientId);
    // The registration goes first: from then on the token endpoint refuses the client, so no new
    // session can appear while the old ones are being deleted.
    const registrationDeleted = record ? await this.store.delete('clients', clientId) : false;
    const sessions = (await this.store.list<SessionRecord>('sessions')).filter((e) => e.value.clientId === clientId);
    for (const { key } of sessions) await this.store.delete('sessions', key);
    const consents = (await this.store.list<ConsentRecord>('consents'))
      .map((e) => ({ key: e.key, parsed: parseConsentKey(e.key) }))
      .filter((e) => e.parsed?.clientId === clientId);
    for (const { key } of consents) await this.store.delete('consents', key);
    if (!record && sessions.length === 0 && consents.length === 0) throw unknownClient(clientId);
    return {
      client_id: clientId,
      source: record?.source ?? (isMetadataDocumentId(clientId) ? 'cimd' : null),
      registration_deleted: registrationDeleted,
      consents_removed: consents.map((c) => c.parsed!.subject).sort(),
      sessions_revoked: sessions.map((s) => s.key),
    };
  }

  // -------------------------------------------------------------------------------------------

  private preRegisteredMap(): Map<string, Readonly<ClientRecord>> {
    return new Map(this.preRegistered().map((c) => [c.client_id, c]));
  }

  private isLive(session: SessionRecord): boolean {
    return Math.min(session.idleExpiresAt, session.absoluteExpiresAt) > this.clock();
  }

  /** Sessions whose entry still exists and whose family has not expired (an idle-expired entry may linger). */
  private async liveSessions(): Promise<SessionRecord[]> {
    return (await this.store.list<SessionRecord>('sessions')).map((e) => e.value).filter((s) => this.isLive(s));
  }

  private async load(): Promise<State> {
    const [clients, consents, sessions] = await Promise.all([
      this.store.list<ClientRecord>('clients'),
      this.store.list<ConsentRecord>('consents'),
      this.liveSessions(),
    ]);
    const byClient: State['consents'] = new Map();
    for (const { key, value } of consents) {
      const k = parseConsentKey(key);
      if (k) push(byClient, k.clientId, { subject: k.subject, record: value });
    }
    const sessionsByClient: State['sessions'] = new Map();
    for (const session of sessions) push(sessionsByClient, session.clientId, session);
    return { preRegistered: this.preRegisteredMap(), stored: new Map(clients.map((e) => [e.key, e.value])), consents: byClient, sessions: sessionsByClient };
  }

  private async summariseOne(clientId: string): Promise<ClientSummary | undefined> {
    return this.summarise(clientId, await this.load());
  }

  /** Undefined when nothing at all is known about this client id. */
  private summarise(clientId: string, state: State): ClientSummary | undefined {
    const pre = state.preRegistered.get(clientId);
    const stored = state.stored.get(clientId);
    const consents = state.consents.get(clientId) ?? [];
    const sessions = state.sessions.get(clientId) ?? [];
    const record = pre ?? stored;
    if (!record && !(isMetadataDocumentId(clientId) && (consents.length > 0 || sessions.length > 0))) return undefined;
    const source: ClientSource = record?.source ?? 'cimd';
    const lastUsed = sessions.reduce((max, s) => Math.max(max, s.lastUsedAt), record?.lastUsedAt ?? 0);
    const firstSeen = Math.min(consents.reduce((min, c) => Math.min(min, c.record.grantedAt), Infinity), sessions.reduce((min, s) => Math.min(min, s.createdAt), Infinity));
    return {
      client_id: clientId,
      client_name: record?.client_name ?? null,
      source,
      created: record ? iso(record.createdAt) : iso(Number.isFinite(firstSeen) ? firstSeen : undefined),
      last_used: iso(lastUsed),
      consented_users: [...new Set(consents.map((c) => c.subject))].sort(),
      active_sessions: sessions.length,
    };
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function sessionSummary(s: SessionRecord): SessionSummary {
  return {
    sid: s.sid,
    client_id: s.clientId,
    subject: s.subject,
    scope: s.scope,
    created: new Date(s.createdAt).toISOString(),
    expires: new Date(Math.min(s.idleExpiresAt, s.absoluteExpiresAt)).toISOString(),
    last_used: new Date(s.lastUsedAt).toISOString(),
  };
}

function unknownClient(clientId: string): AdminError {
  return new AdminError(404, 'not_found', `no client ${JSON.stringify(clientId)}`);
}

/** A Client ID Metadata Document client: its id is the https URL of its document. */
function isMetadataDocumentId(clientId: string): boolean {
  return clientId.startsWith('https://');
}

/** The inverse of `consentKey`: `[clientId, subject]` as JSON; undefined for anything else. */
function parseConsentKey(key: string): { clientId: string; subject: string } | undefined {
  try {
    const parsed: unknown = JSON.parse(key);
    if (Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === 'string' && typeof parsed[1] === 'string') {
      return { clientId: parsed[0], subject: parsed[1] };
    }
  } catch {
    // not one of ours
  }
  return undefined;
}
