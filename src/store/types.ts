/**
 * The state store contract: the one narrow interface the OAuth Authorization Server keeps its state
 * behind (DESIGN.md §8). Implementations: `file` (auth_server.json, the default), `memory`, and
 * `redis` (several replicas). All of them pass the same contract suite (test/contract/store.suite.ts).
 *
 * Values are plain JSON objects. Keys are opaque strings chosen by the caller; secrets (tokens, codes)
 * are never used as keys or values: callers store hashes.
 *
 * Durability: every write to a persistent namespace (`clients`, `consents`, `sessions`) resolves only
 * once it is durable (for the file store: temp file + fsync + rename + directory fsync, group-committed
 * so concurrent writes share one fsync). Ephemeral namespaces may live in memory in a single-instance
 * store (the file store keeps `codes`, `codeUses` and `ratelimit` in memory).
 */

export type PersistentNamespace = 'clients' | 'consents' | 'sessions';
/** `mcpSessions`: termination markers of MCP sessions, so every replica answers 404 for them. */
export type EphemeralNamespace = 'codes' | 'codeUses' | 'ratelimit' | 'mcpSessions';
export type Namespace = PersistentNamespace | EphemeralNamespace;

export const PERSISTENT_NAMESPACES: readonly PersistentNamespace[] = ['clients', 'consents', 'sessions'];

/** A refresh-token family (one per authorization): what the refresh grant needs, never the token itself. */
export interface SessionRecord {
  sid: string;
  clientId: string;
  subject: string;
  groups: string[];
  scope: string;
  resource: string;
  /** Generation of the current refresh token; the token is derived from (sid, generation). */
  generation: number;
  /** When the current generation was issued (ms since epoch). */
  rotatedAt: number;
  createdAt: number;
  lastUsedAt: number;
  /** Sliding idle expiry (ms since epoch). */
  idleExpiresAt: number;
  /** Absolute end of the family (ms since epoch). */
  absoluteExpiresAt: number;
}

export interface RotateRequest {
  sid: string;
  /** The generation the presented refresh token belongs to. */
  presentedGeneration: number;
  now: number;
  /** A replay of the previous generation within this window returns the current one (ms). */
  graceMs: number;
  /** New sliding idle lifetime (ms) applied on rotation. */
  idleTtlMs: number;
}

export type RotateResult =
  /** The presented token was current: the family moved to `session.generation`. */
  | { status: 'rotated'; session: SessionRecord }
  /** The presented token was the previous one, within the grace window: same successor again. */
  | { status: 'grace'; session: SessionRecord }
  /** An older token, or the previous one after the window: the whole family has been revoked. */
  | { status: 'reuse'; session: SessionRecord }
  /** No such family, or it expired (idle or absolute). */
  | { status: 'invalid' };

export interface StateStore {
  readonly kind: 'file' | 'memory' | 'redis';

  get<T extends object>(namespace: Namespace, key: string): Promise<T | undefined>;

  /** Creates or replaces. `ttlSeconds` makes the entry expire (and disappear from `list`). */
  put<T extends object>(namespace: Namespace, key: string, value: T, ttlSeconds?: number): Promise<void>;

  /** Atomically reads and deletes: of several concurrent callers exactly one gets the value. */
  takeOnce<T extends object>(namespace: Namespace, key: string): Promise<T | undefined>;

  /** Returns whether something was deleted. */
  delete(namespace: Namespace, key: string): Promise<boolean>;

  /** Every live entry of a namespace. */
  list<T extends object>(namespace: Namespace): Promise<Array<{ key: string; value: T }>>;

  /** Atomically increments a counter that expires `ttlSeconds` after its first increment; returns the new value. */
  increment(namespace: EphemeralNamespace, key: string, ttlSeconds: number): Promise<number>;

  /**
   * The atomic refresh-token rotation (see `RotateResult`): of several concurrent callers presenting
   * the same current generation, exactly one gets `rotated`; the others get `grace` with the same
   * successor (when within the window).
   */
  rotateRefresh(request: RotateRequest): Promise<RotateResult>;

  /** Whether the store is reachable (for /readyz). */
  healthy(): Promise<boolean>;

  /** Flushes pending writes and releases resources. */
  close(): Promise<void>;
}

/**
 * Thrown by a store that cannot reach its backend (Redis down). Callers answer 503 and keep going
 * with what they can do without the store; it is never a reason to accept a credential.
 */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}
