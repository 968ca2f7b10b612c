import { randomToken } from '../crypto/random.js';
import type { Identity } from '../auth/types.js';
import type { SseStream } from '../http/sse.js';
import type { ClientCapabilities, Implementation, LoggingLevel } from '@modelcontextprotocol/sdk/types.js';

export interface InflightRequest {
  controller: AbortController;
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
  readonly id = randomToken(24);
  initialized = false;
  logLevel?: LoggingLevel;
  lastSeen = Date.now();
  readonly getStreams = new Set<SseStream>();
  readonly inflight = new Map<string, InflightRequest>();
  readonly subscriptions = new Set<string>();

  constructor(
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

  close(): void {
    for (const request of this.inflight.values()) request.controller.abort(new Error('session terminated'));
    this.inflight.clear();
    for (const stream of this.getStreams) stream.end();
    this.getStreams.clear();
  }
}

export function ownerKeyOf(identity: Identity): string {
  return JSON.stringify([identity.via, identity.subject, identity.clientId ?? '']);
}

export function requestKey(id: string | number): string {
  return typeof id === 'number' ? `n:${id}` : `s:${id}`;
}

/** All live sessions of this process, with idle expiry. */
export class SessionRegistry {
  private readonly sessions = new Map<string, FrontSession>();
  private reaper?: NodeJS.Timeout;

  constructor(private idleTimeoutMs: number) {}

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
