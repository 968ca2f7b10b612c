/**
 * `oauth_as`: access tokens issued by our own Authorization Server (DESIGN.md §6).
 *
 * - `recognizes`: the bearer token looks like one of ours (`AccessTokens.isOurs`: compact JWS,
 *   `typ: at+jwt`, `alg: HS256`, `iss` = our issuer; unverified, cheap). Foreign JWTs are left to
 *   other providers (`jwks`).
 * - `authenticate`: full verification (`AccessTokens.verify`: signature, alg, iss, aud, typ, times,
 *   claim types), then revocation: the token's session (`sessions/<sid>`) must still exist and belong
 *   to the token's client, and the client (`clients/<client_id>`) must still exist. A revoked family,
 *   a deleted session or a deleted client rejects the token before its `exp`.
 *
 * Revocation lookups are cached per sid and per client_id for `revocationCacheMs` (default 2 s), both
 * positive and negative answers, in bounded maps, and concurrent lookups of one key share one store
 * call. So revocation bites within `revocationCacheMs`, and the store sees at most one read per
 * session and per client per window, whatever the request rate.
 *
 * Store failures (e.g. Redis unreachable) fail CLOSED: the token is rejected ("state store
 * unavailable"), unless that sid/client was positively confirmed no more than `outageGraceMs` ago
 * (default: `revocationCacheMs`), in which case the last confirmation is trusted. Within the cache
 * window the store is not asked at all, so a store outage is invisible for that long; raising
 * `outageGraceMs` keeps /mcp working longer during an outage, at the cost of revocations issued
 * during the outage biting late.
 *
 * Identity: `{ subject: sub, roles: groups, clientId: client_id, scopes: scope split on spaces,
 * via: 'oauth_as' }`. `injectedRoles` were already put into `groups` when the token was issued; they
 * are unioned in again without duplicates, so a role added to `injectedRoles` later applies at once.
 */
import type { AccessTokens, VerifiedAccessToken } from '../../oauth/tokens.js';
import type { SessionRecord, StateStore } from '../../store/types.js';
import { InvalidCredentialError, freezeIdentity, type AuthProvider, type AuthRequest, type Identity } from '../types.js';

export interface OAuthJwtProviderOptions {
  tokens: AccessTokens;
  store: StateStore;
  /** Roles every identity of this AS carries (already in `groups`; never duplicated). */
  injectedRoles?: string[];
  /** How long a session/client existence check is reused (ms, default 2000). */
  revocationCacheMs?: number;
  /** When the store fails, how old a positive confirmation may be and still be trusted (ms, default = revocationCacheMs). */
  outageGraceMs?: number;
  /** Bound of each revocation cache map (default 10,000 entries). */
  maxCacheEntries?: number;
  /** ms since epoch; injectable for tests. */
  clock?: () => number;
  /**
   * Whether a client still exists. Default: a record in the store's `clients` namespace. The
   * Authorization Server passes its registry, which also knows pre-registered clients (config and
   * MCP_AUTH_SERVER_CONFIG) and Client ID Metadata Document clients, neither of which is stored.
   */
  clientExists?: (clientId: string) => Promise<boolean>;
}

const NAME = 'oauth_as';

interface Lookup {
  /** The entity exists (and, for sessions, belongs to the expected client). */
  exists: boolean;
  /** When the store answered (ms). */
  checkedAt: number;
  /** When the store last answered "exists" (ms), kept across negative answers for outage decisions. */
  confirmedAt?: number;
}

class ExistenceCache {
  private readonly entries = new Map<string, Lookup>();
  private readonly inflight = new Map<string, Promise<boolean>>();

  constructor(
    private readonly what: string,
    private readonly load: (key: string) => Promise<boolean>,
    private readonly cacheMs: number,
    private readonly graceMs: number,
    private readonly maxEntries: number,
    private readonly clock: () => number,
  ) {}

  /** The answer still inside the cache window, if any (the usual case: no store call, no await). */
  cached(key: string): boolean | undefined {
    const cached = this.entries.get(key);
    return cached && this.clock() - cached.checkedAt < this.cacheMs ? cached.exists : undefined;
  }

  /** Whether the entity exists; throws InvalidCredentialError when the store fails outside the grace window. */
  async exists(key: string): Promise<boolean> {
    const now = this.clock();
    const cached = this.entries.get(key);
    if (cached && now - cached.checkedAt < this.cacheMs) return cached.exists;

    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.load(key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    try {
      const exists = await pending;
      const at = this.clock();
      this.set(key, { exists, checkedAt: at, confirmedAt: exists ? at : undefined });
      return exists;
    } catch {
      const confirmedAt = cached?.exists ? cached.confirmedAt : undefined;
      if (confirmedAt !== undefined && this.clock() - confirmedAt <= this.graceMs) return true;
      throw new InvalidCredentialError(NAME, `state store unavailable while checking the ${this.what}`);
    }
  }

  private set(key: string, value: Lookup): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) {
      const now = this.clock();
      for (const [k, entry] of this.entries) {
        if (now - entry.checkedAt >= Math.max(this.cacheMs, this.graceMs)) this.entries.delete(k);
      }
      while (this.entries.size >= this.maxEntries) {
        const oldest = this.entries.keys().next();
        if (oldest.done) break;
        this.entries.delete(oldest.value);
      }
    }
    this.entries.set(key, value);
  }
}

export function createOAuthJwtProvider(options: OAuthJwtProviderOptions): AuthProvider {
  const { tokens, store } = options;
  const clock = options.clock ?? Date.now;
  const cacheMs = options.revocationCacheMs ?? 2000;
  const graceMs = options.outageGraceMs ?? cacheMs;
  const maxEntries = options.maxCacheEntries ?? 10_000;
  const injectedRoles = [...(options.injectedRoles ?? [])];

  // Session keys combine sid and client_id: a session record must belong to the token's client.
  const sessions = new ExistenceCache('session', async (key) => {
    const { sid, clientId } = splitSessionKey(key);
    const record = await store.get<SessionRecord>('sessions', sid);
    return record !== undefined && record.clientId === clientId;
  }, cacheMs, graceMs, maxEntries, clock);
  const clientExists = options.clientExists ?? (async (clientId: string) => (await store.get<object>('clients', clientId)) !== undefined);
  const clients = new ExistenceCache('client', async (clientId) => {
    return clientExists(clientId);
  }, cacheMs, graceMs, maxEntries, clock);

  const identities = new WeakMap<VerifiedAccessToken, Identity>();

  return {
    name: NAME,
    recognizes(request: AuthRequest): boolean {
      return typeof request.bearer === 'string' && tokens.isOurs(request.bearer);
    },
    async authenticate(request: AuthRequest): Promise<Identity> {
      if (!request.bearer) throw new InvalidCredentialError(NAME, 'no bearer token');
      const claims = await tokens.verify(request.bearer);
      const sessionKey = sessionKeyOf(claims.sid, claims.client_id);
      let sessionOk = sessions.cached(sessionKey);
      let clientOk = clients.cached(claims.client_id);
      if (sessionOk === undefined || clientOk === undefined) {
        [sessionOk, clientOk] = await Promise.all([
          sessionOk ?? sessions.exists(sessionKey),
          clientOk ?? clients.exists(claims.client_id),
        ]);
      }
      if (!clientOk) throw new InvalidCredentialError(NAME, 'client no longer registered');
      if (!sessionOk) throw new InvalidCredentialError(NAME, 'session revoked or expired');
      // One identity per verified token (the claims object lives as long as the token is cached).
      let identity = identities.get(claims);
      if (!identity) {
        identity = freezeIdentity({
          subject: claims.sub,
          roles: [...new Set([...claims.groups, ...injectedRoles])],
          clientId: claims.client_id,
          scopes: claims.scope.split(' ').filter(Boolean),
          via: NAME,
        });
        identities.set(claims, identity);
      }
      return identity;
    },
  };
}

/** A session cache key: sid and client_id, unambiguous whatever characters they hold. */
function sessionKeyOf(sid: string, clientId: string): string {
  return `${sid.length}:${sid}${clientId}`;
}

function splitSessionKey(key: string): { sid: string; clientId: string } {
  const colon = key.indexOf(':');
  const end = colon + 1 + Number(key.slice(0, colon));
  return { sid: key.slice(colon + 1, end), clientId: key.slice(end) };
}
