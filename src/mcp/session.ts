import { createHash } from 'node:crypto';
import { randomToken } from '../crypto/random.js';
import { SessionIds } from './session-id.js';
import { perIdentity, type Identity } from '../auth/types.js';
import type { SseStream } from '../http/sse.js';
import { McpError, ErrorCode, type ClientCapabilities, type Implementation, type LoggingLevel } from '@modelcontextprotocol/sdk/types.js';
import type { Backend } from '../backends/backend.js';
import type { Cancellation } from '../backends/cancellation.js';

interface PendingClientRequest {
  resolve(result: Record<string, unknown>): void;
  reject(error: Error): void;
}

export interface InflightRequest {
  cancellation: Cancellation;
  backend?: string;
  /** The SSE stream the request's response goes to, when it streams. */
  stream?: SseStream;
}

/**
 * One client's MCP session on this gateway. It is bound to the identity that created it: the
 * same session id presented by anyone else is treated as unknown. It is never a credential:
 * every request is authenticated before the session is even looked up.
 */
export class FrontSession {
  initialized = false;
  /** When another replica's termination was last checked for (ms). */
  terminationCheckedAt = Date.now();
  logLevel?: LoggingLevel;
  lastSeen = Date.now();
  readonly getStreams = new Set<SseStream>();
  readonly inflight = new Map<string, InflightRequest>();
  readonly subscriptions = new Set<string>();
  /** Per-session backend connections (`sharing: "per-session"`), by backend name. */
  readonly connections = new Map<string, Promise<Backend>>();
  private readonly pendingClientRequests = new Map<string, PendingClientRequest>();
  private nextClientRequestId = 0;

  constructor(
    readonly id: string,
    readonly ownerKey: string,
    readonly protocolVersion: string,
    readonly clientCapabilities: ClientCapabilities,
    readonly clientInfo: Implementation | undefined,
  ) {}

  /** Sends a server notification on the newest open GET stream; false when none is open. */
  notify(message: unknown): boolean {
    let latest: SseStream | undefined;
    for (const stream of this.getStreams) if (!stream.closed) latest = stream;
    return latest ? latest.send(message) : false;
  }

  /**
   * Sends a backend's request (sampling, elicitation, roots) to this client, on the stream of the
   * request that caused it when there is one, else on the GET stream; resolves with the client's
   * answer, which arrives in a later POST.
   */
  requestClient(method: string, params: Record<string, unknown> | undefined, signal: AbortSignal, backend: string): Promise<Record<string, unknown>> {
    const id = `gatehouse-${++this.nextClientRequestId}`;
    const message = { jsonrpc: '2.0', id, method, params };
    let sent = false;
    for (const request of [...this.inflight.values()].reverse()) {
      if (request.backend === backend && request.stream && request.stream.send(message)) {
        sent = true;
        break;
      }
    }
    if (!sent) sent = this.notify(message);
    if (!sent) {
      return Promise.reject(new McpError(ErrorCode.InternalError, `${method}: the client has no open stream to receive server requests`));
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.pendingClientRequests.delete(id);
        this.notify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'cancelled by the backend' } });
        reject(new McpError(ErrorCode.RequestTimeout, `${method} cancelled`));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.pendingClientRequests.set(id, {
        resolve: (result) => {
          signal.removeEventListener('abort', onAbort);
          resolve(result);
        },
        reject: (error) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      });
    });
  }

  /** A client's response to one of `requestClient`'s requests; unknown ids are ignored. */
  handleClientResponse(message: { id?: unknown; result?: unknown; error?: unknown }): void {
    const pending = this.pendingClientRequests.get(String(message.id));
    if (!pending) return;
    this.pendingClientRequests.delete(String(message.id));
    if (message.error && typeof message.error === 'object') {
      const { code, message: text, data } = message.error as { code?: number; message?: string; data?: unknown };
      pending.reject(new McpError(typeof code === 'number' ? code : ErrorCode.InternalError, String(text ?? 'client error'), data));
    } else {
      pending.resolve((message.result ?? {}) as Record<string, unknown>);
    }
  }

  close(): void {
    for (const request of this.inflight.values()) request.cancellation.abort(new Error('session terminated'));
    this.inflight.clear();
    for (const pending of this.pendingClientRequests.values()) pending.reject(new McpError(ErrorCode.ConnectionClosed, 'session terminated'));
    this.pendingClientRequests.clear();
    for (const connection of this.connections.values()) void connection.then((backend) => backend.stop(), () => {});
    this.connections.clear();
    for (const stream of this.getStreams) stream.end();
    this.getStreams.clear();
  }
}

function terminationKey(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}

/** Who owns a session: provider, subject and client (computed once per shared identity). */
export const ownerKeyOf = perIdentity((identity: Identity) => JSON.stringify([identity.via, identity.subject, identity.clientId ?? '']));

export function requestKey(id: string | number): string {
  return typeof id === 'number' ? `n:${id}` : `s:${id}`;
}

/** Where session terminations are recorded so that every replica honours them (the state store). */
export interface TerminationLog {
  mark(key: string, ttlSeconds: number): Promise<void>;
  isTerminated(key: string): Promise<boolean>;
}

const TERMINATION_CHECK_MS = 2000;

/**
 * All live sessions of this process, with idle expiry. Sessions created on another replica are
 * rebuilt from their (MAC'd) id on first sight; DELETE is recorded in the termination log so every
 * replica answers 404 for that id within a couple of seconds.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, FrontSession>();
  private reaper?: NodeJS.Timeout;
  private termination?: TerminationLog;
  private ids?: SessionIds;
  /** Ids terminated here, so they are never rebuilt from their id (bounded; oldest dropped first). */
  private readonly terminatedHere = new Set<string>();

  constructor(private idleTimeoutMs: number) {}

  /** Enables sessions that survive a change of replica. */
  share(ids: SessionIds, termination?: TerminationLog): void {
    this.ids = ids;
    this.termination = termination;
  }

  /** A new session id for this owner (portable when sharing is enabled). */
  newId(ownerKey: string, protocolVersion: string, capabilities: ClientCapabilities): string {
    return this.ids ? this.ids.mint({ owner: SessionIds.ownerDigest(ownerKey), protocolVersion, capabilities }) : randomToken(24);
  }

  /**
   * The session `id` for `ownerKey`: a local one, or one rebuilt from a genuine id minted by
   * another replica for the same owner; undefined when unknown, terminated or someone else's.
   */
  async resolve(id: string, ownerKey: string): Promise<FrontSession | undefined> {
    let session = this.get(id, ownerKey);
    if (!session && !this.sessions.has(id) && this.ids && !this.terminatedHere.has(id)) {
      const claims = this.ids.parse(id);
      if (!claims || claims.owner !== SessionIds.ownerDigest(ownerKey)) return undefined;
      // A session is not a credential: if the log is unreachable, taking the session over is safe.
      if (this.termination && (await this.termination.isTerminated(terminationKey(id)).catch(() => false))) return undefined;
      session = new FrontSession(id, ownerKey, claims.protocolVersion, claims.capabilities, undefined);
      session.initialized = true;
      this.sessions.set(id, session);
      return session;
    }
    if (session && this.termination && Date.now() - session.terminationCheckedAt > TERMINATION_CHECK_MS) {
      session.terminationCheckedAt = Date.now();
      if (await this.termination.isTerminated(terminationKey(id)).catch(() => false)) {
        this.delete(id);
        return undefined;
      }
    }
    return session;
  }

  /** Ends a session here and, through the termination log, on every other replica. */
  async terminate(id: string): Promise<void> {
    this.delete(id);
    if (this.terminatedHere.size >= 100_000) this.terminatedHere.delete(this.terminatedHere.values().next().value!);
    this.terminatedHere.add(id);
    await this.termination?.mark(terminationKey(id), Math.ceil(this.idleTimeoutMs / 1000) * 7).catch(() => {});
  }

  start(): void {
    this.reaper = setInterval(() => this.reapIdle(), Math.min(60_000, Math.max(1000, this.idleTimeoutMs / 4)));
    this.reaper.unref();
  }

  setIdleTimeout(ms: number): void {
    this.idleTimeoutMs = ms;
  }

  add(session: FrontSession): void {
    this.sessions.set(session.id, session);
  }

  /** The session, only if `ownerKey` owns it. */
  get(id: string, ownerKey: string): FrontSession | undefined {
    const session = this.sessions.get(id);
    if (!session || session.ownerKey !== ownerKey) return undefined;
    session.lastSeen = Date.now();
    return session;
  }

  delete(id: string): void {
    const session = this.sessions.get(id);
    if (!session) return;
    this.sessions.delete(id);
    session.close();
  }

  all(): IterableIterator<FrontSession> {
    return this.sessions.values();
  }

  get size(): number {
    return this.sessions.size;
  }

  reapIdle(now = Date.now()): void {
    for (const session of this.sessions.values()) {
      const busy = session.inflight.size > 0 || [...session.getStreams].some((s) => !s.closed);
      if (!busy && now - session.lastSeen > this.idleTimeoutMs) this.delete(session.id);
    }
  }

  endStreams(): void {
    for (const session of this.sessions.values()) {
      for (const stream of session.getStreams) stream.end();
      session.getStreams.clear();
    }
  }

  closeAll(): void {
    if (this.reaper) clearInterval(this.reaper);
    for (const id of [...this.sessions.keys()]) this.delete(id);
  }
}
