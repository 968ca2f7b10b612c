import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AuthRequest, Identity } from '../auth/types.js';
import { jsonString, SelfSerializingFields, type Logger } from '../log.js';
import { routeOf, secondsSince, type HttpMetrics } from '../observability/metrics.js';
import { normalizePeerAddress } from './peer.js';
import { sendBody, writeLoneChunksPlainly } from './respond.js';
import type { OriginVerdict } from './origin.js';

export interface AuthFailure {
  status: number;
  wwwAuthenticate: string;
  description: string;
}

/**
 * Per-request fields for the request log line, filled while the request is handled: the identity
 * by the front, `backend` and `tool` by the MCP router for `tools/call` (the first one of a batch).
 */
export interface RequestNote {
  subject?: string;
  clientId?: string;
  backend?: string;
  tool?: string;
}

export interface HttpRoutes {
  /** Authenticates one `/mcp` request through the ProviderChain. */
  authenticate(request: AuthRequest): Promise<{ ok: true; identity: Identity } | ({ ok: false } & AuthFailure)>;
  mcp(req: IncomingMessage, res: ServerResponse, identity: Identity, note: RequestNote): Promise<void>;
  originPolicy(): (host: string | undefined, origin: string | undefined) => OriginVerdict;
  readiness(): Promise<{ ready: boolean; detail: Record<string, unknown> }> | { ready: boolean; detail: Record<string, unknown> };
  /** Extra routes (OAuth endpoints, metadata) a later layer adds; return true when handled. */
  extra?(req: IncomingMessage, res: ServerResponse, path: string, note: RequestNote): Promise<boolean> | boolean;
  /** Answers `/metrics`; return false when metrics are disabled (404). */
  metrics?(req: IncomingMessage, res: ServerResponse): Promise<boolean> | boolean;
}

/** The fields of the request log line: method, path, status, durationMs, then the note's. */
export class RequestLine extends SelfSerializingFields {
  constructor(readonly method: string, readonly path: string, readonly status: number, readonly durationMs: number, readonly note: RequestNote) {
    super();
  }

  jsonMembers(): string {
    const { subject, clientId, backend, tool } = this.note;
    let members = `,"method":${jsonString(this.method)},"path":${jsonString(this.path)},"status":${this.status},"durationMs":${this.durationMs}`;
    if (subject !== undefined) members += `,"subject":${jsonString(subject)}`;
    if (clientId !== undefined) members += `,"clientId":${jsonString(clientId)}`;
    if (backend !== undefined) members += `,"backend":${jsonString(backend)}`;
    if (tool !== undefined) members += `,"tool":${jsonString(tool)}`;
    return members;
  }

  toJSON(): Record<string, unknown> {
    const { subject, clientId, backend, tool } = this.note;
    return { method: this.method, path: this.path, status: this.status, durationMs: this.durationMs, subject, clientId, backend, tool };
  }
}

const CORS_EXPOSE = 'Mcp-Session-Id, WWW-Authenticate, MCP-Protocol-Version';
const CORS_ALLOW = 'Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID';

/**
 * The node:http front: dispatches by path, enforces the Origin/Host policy and authentication on
 * `/mcp`, writes one structured log line per request, and tracks in-flight requests for draining.
 * It makes no authorisation decisions of its own.
 */
export class HttpFront {
  readonly server: Server;
  private inflight = 0;
  private draining = false;
  private drained?: () => void;

  constructor(private readonly routes: HttpRoutes, private readonly logger: Logger, private readonly metrics?: HttpMetrics) {
    this.server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000, requestTimeout: 0 }, (req, res) => {
      void this.handle(req, res);
    });
    this.server.on('connection', writeLoneChunksPlainly);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    this.inflight++;
    // The logged path never carries the query string (authorize URLs hold state and code_challenge).
    const path = (req.url ?? '/').split('?')[0] || '/';
    const note: RequestNote = {};
    res.on('close', () => {
      this.inflight--;
      const route = routeOf(path);
      const seconds = secondsSince(started);
      this.metrics?.httpRequest(route, req.method ?? 'GET', res.statusCode, seconds);
      // Probes and successful scrapes are counted, not logged. Durations to the microsecond.
      if (route !== '/healthz' && route !== '/readyz' && !(route === '/metrics' && res.statusCode < 400)) {
        this.logger.info(new RequestLine(req.method ?? 'GET', path, res.statusCode, Math.round(seconds * 1e6) / 1e3, note), 'request');
      }
      if (this.draining && this.inflight === 0) this.drained?.();
    });
    try {
      if (this.draining) res.setHeader('connection', 'close');
      if (path === '/mcp' || path === '/mcp/') {
        await this.mcp(req, res, note);
        return;
      }
      if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
        return json(res, 200, { status: 'ok' });
      }
      if (path === '/readyz' && (req.method === 'GET' || req.method === 'HEAD')) {
        const { ready, detail } = await this.routes.readiness();
        return json(res, ready && !this.draining ? 200 : 503, { status: ready && !this.draining ? 'ready' : 'not ready', ...detail });
      }
      if (path === '/metrics' && this.routes.metrics && (await this.routes.metrics(req, res))) return;
      if (this.routes.extra && (await this.routes.extra(req, res, path, note))) return;
      json(res, 404, { error: 'not_found', error_description: `No route for ${req.method} ${path}` });
    } catch (error) {
      this.logger.error({ err: error instanceof Error ? error.message : String(error) }, 'unhandled request error');
      if (!res.headersSent) json(res, 500, { error: 'server_error', error_description: 'Internal error' });
      else res.end();
    }
  }

  private async mcp(req: IncomingMessage, res: ServerResponse, note: RequestNote): Promise<void> {
    const origin = typeof req.headers.origin === 'string' ? req.headers.origin : undefined;
    const verdict = this.routes.originPolicy()(req.headers.host, origin);
    if (!verdict.ok) {
      rpcError(res, 403, verdict.message);
      return;
    }
    if (verdict.corsOrigin) {
      res.setHeader('access-control-allow-origin', verdict.corsOrigin);
      res.setHeader('vary', 'Origin');
      res.setHeader('access-control-expose-headers', CORS_EXPOSE);
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
        'access-control-allow-headers': CORS_ALLOW,
        'access-control-max-age': '600',
      });
      res.end();
      return;
    }
    const outcome = await this.routes.authenticate({
      headers: req.headers,
      peerAddress: normalizePeerAddress(req.socket.remoteAddress),
    });
    if (!outcome.ok) {
      req.resume();
      rpcError(res, outcome.status, outcome.description, { 'www-authenticate': outcome.wwwAuthenticate });
      return;
    }
    note.subject = outcome.identity.subject;
    if (outcome.identity.clientId !== undefined) note.clientId = outcome.identity.clientId;
    await this.routes.mcp(req, res, outcome.identity, note);
  }

  listen(port: number, host: string): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? { host, port: address.port } : { host, port });
      });
    });
  }

  /**
   * Stops accepting connections and waits up to `graceMs` for in-flight requests (long-lived
   * SSE streams are ended by the caller first), then cuts what is left.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inflight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => (this.drained = resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref()),
      ]);
    }
    this.server.closeAllConnections();
    await closed;
  }
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendBody(res, status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }, JSON.stringify(body));
}

function rpcError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  json(res, status, { jsonrpc: '2.0', id: null, error: { code: -32000, message } }, headers);
}
