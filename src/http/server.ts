import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AuthRequest, Identity } from '../auth/types.js';
import type { Logger } from '../log.js';
import { normalizePeerAddress } from './peer.js';
import type { OriginVerdict } from './origin.js';

export interface AuthFailure {
  status: number;
  wwwAuthenticate: string;
  description: string;
}

export interface HttpRoutes {
  /** Authenticates one `/mcp` request through the ProviderChain. */
  authenticate(request: AuthRequest): Promise<{ ok: true; identity: Identity } | ({ ok: false } & AuthFailure)>;
  mcp(req: IncomingMessage, res: ServerResponse, identity: Identity): Promise<void>;
  originPolicy(): (host: string | undefined, origin: string | undefined) => OriginVerdict;
  readiness(): Promise<{ ready: boolean; detail: Record<string, unknown> }> | { ready: boolean; detail: Record<string, unknown> };
  /** Extra routes (OAuth endpoints, metadata) a later layer adds; return true when handled. */
  extra?(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> | boolean;
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

  constructor(private readonly routes: HttpRoutes, private readonly logger: Logger) {
    this.server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000, requestTimeout: 0 }, (req, res) => {
      void this.handle(req, res);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    this.inflight++;
    let subject: string | undefined;
    res.on('close', () => {
      this.inflight--;
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/healthz' && path !== '/readyz') {
        this.logger.info({ method: req.method, path, status: res.statusCode, durationMs: Number(process.hrtime.bigint() - started) / 1e6, subject }, 'request');
      }
      if (this.draining && this.inflight === 0) this.drained?.();
    });
    try {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (this.draining) res.setHeader('connection', 'close');
      if (path === '/mcp' || path === '/mcp/') {
        subject = await this.mcp(req, res);
        return;
      }
      if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
        return json(res, 200, { status: 'ok' });
      }
      if (path === '/readyz' && (req.method === 'GET' || req.method === 'HEAD')) {
        const { ready, detail } = await this.routes.readiness();
        return json(res, ready && !this.draining ? 200 : 503, { status: ready && !this.draining ? 'ready' : 'not ready', ...detail });
      }
      if (this.routes.extra && (await this.routes.extra(req, res, path))) return;
      json(res, 404, { error: 'not_found', error_description: `No route for ${req.method} ${path}` });
    } catch (error) {
      this.logger.error({ err: error instanceof Error ? error.message : String(error) }, 'unhandled request error');
      if (!res.headersSent) json(res, 500, { error: 'server_error', error_description: 'Internal error' });
      else res.end();
    }
  }

  private async mcp(req: IncomingMessage, res: ServerResponse): Promise<string | undefined> {
    const origin = typeof req.headers.origin === 'string' ? req.headers.origin : undefined;
    const verdict = this.routes.originPolicy()(req.headers.host, origin);
    if (!verdict.ok) {
      rpcError(res, 403, verdict.message);
      return undefined;
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
      return undefined;
    }
    const outcome = await this.routes.authenticate({
      headers: req.headers,
      peerAddress: normalizePeerAddress(req.socket.remoteAddress),
    });
    if (!outcome.ok) {
      req.resume();
      rpcError(res, outcome.status, outcome.description, { 'www-authenticate': outcome.wwwAuthenticate });
      return undefined;
    }
    await this.routes.mcp(req, res, outcome.identity);
    return outcome.identity.subject;
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
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

function rpcError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  json(res, status, { jsonrpc: '2.0', id: null, error: { code: -32000, message } }, headers);
}
