import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { extractBearer } from '../auth/chain.js';
import type { MetricsConfig } from '../config/types.js';
import { constantTimeEqual } from '../crypto/compare.js';

/**
 * Prometheus metrics (README "Metrics and audit log"). One `Metrics` per gateway, on its own
 * `Registry` (never prom-client's global one), so several gateways can live in one process.
 *
 * Label values are bounded sets only: routes, HTTP and MCP method names, backend names from the
 * configuration, fixed outcome words. No identity (subject, client id, token, user) ever becomes a
 * label value; the recording modules receive the small interfaces below, never this class.
 */

/** The `route` label: a fixed set, never the raw path. */
export const HTTP_ROUTES = [
  '/mcp', '/oauth/token', '/oauth/register', '/oauth/authorize', '/oauth/revoke', '/.well-known',
  '/admin/api', '/healthz', '/readyz', '/metrics', 'other',
] as const;
export type HttpRoute = (typeof HTTP_ROUTES)[number];

const EXACT_ROUTES = new Map<string, HttpRoute>([
  ['/mcp', '/mcp'], ['/mcp/', '/mcp'],
  ['/oauth/token', '/oauth/token'], ['/oauth/register', '/oauth/register'],
  ['/oauth/authorize', '/oauth/authorize'], ['/oauth/revoke', '/oauth/revoke'],
  ['/admin/api', '/admin/api'], ['/healthz', '/healthz'], ['/readyz', '/readyz'], ['/metrics', '/metrics'],
]);

/** Maps a request path (without its query string) to its `route` label. */
export function routeOf(path: string): HttpRoute {
  const exact = EXACT_ROUTES.get(path);
  if (exact) return exact;
  if (path.startsWith('/.well-known/')) return '/.well-known';
  if (path.startsWith('/admin/api/')) return '/admin/api';
  return 'other';
}

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The HTTP `method` label: a known method, or `other` (clients may send any token). */
export function methodLabel(method: string | undefined): string {
  return method && HTTP_METHODS.has(method) ? method : 'other';
}

export type ToolCallOutcome = 'ok' | 'tool_error' | 'error' | 'denied' | 'unknown';

/** What the HTTP front records. */
export interface HttpMetrics {
  httpRequest(route: HttpRoute, method: string, status: number, seconds: number): void;
}

/** What the MCP router records. `backend` is a configured backend name ("" for an unknown tool). */
export interface RouterMetrics {
  toolCall(backend: string, outcome: ToolCallOutcome): void;
  /** `method` is one of the MCP methods the router forwards (tools/call, prompts/get, ...). */
  backendRequest(backend: string, method: string, seconds: number): void;
}

/** What the token and revocation endpoints record (`TokenDeps.onOutcome`). */
export type TokenOutcomeRecorder = (grant: string, outcome: string) => void;

/** What the state store records after each write (file: flush with fsync; redis: the write command). */
export type StoreWriteRecorder = (store: 'file' | 'redis', seconds: number) => void;

export interface MetricsOptions {
  /** Process metrics (`collectDefaultMetrics`: CPU, memory, event loop lag, GC). Default true. */
  defaultMetrics?: boolean;
}

/** Seconds, for request latencies from a millisecond to a long tool call. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Seconds, for store writes (an fsync is ~1 ms on SSD, much more on network disks). */
const STORE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class Metrics implements HttpMetrics, RouterMetrics {
  readonly registry = new Registry();
  private readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  private readonly httpDuration: Histogram<'route' | 'method'>;
  private readonly toolCalls: Counter<'backend' | 'outcome'>;
  private readonly backendDuration: Histogram<'backend' | 'method'>;
  private readonly tokens: Counter<'grant' | 'outcome'>;
  private readonly storeWrites: Histogram<'store'>;
  private backends: () => Array<{ name: string; up: boolean }> = () => [];
  private sessions: () => number = () => 0;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    this.httpRequests = new Counter({
      name: 'gatehouse_http_requests_total',
      help: 'HTTP requests answered, by route (a fixed set), method and status code.',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'gatehouse_http_request_duration_seconds',
      help: 'HTTP request duration until the response is finished (SSE streams: their lifetime), by route and method.',
      labelNames: ['route', 'method'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.toolCalls = new Counter({
      name: 'gatehouse_tool_calls_total',
      help: 'tools/call requests by backend and outcome (ok, tool_error, error, denied, unknown; backend is empty for unknown tools).',
      labelNames: ['backend', 'outcome'],
      registers,
    });
    this.backendDuration = new Histogram({
      name: 'gatehouse_backend_request_duration_seconds',
      help: 'Duration of requests forwarded to a backend, by backend and MCP method.',
      labelNames: ['backend', 'method'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const self = this;
    new Gauge({
      name: 'gatehouse_backend_up',
      help: '1 when the backend is connected and ready, 0 otherwise (starting, down, disabled).',
      labelNames: ['backend'],
      registers,
      collect() {
        this.reset();
        for (const backend of self.backends()) this.set({ backend: backend.name }, backend.up ? 1 : 0);
      },
    });
    this.tokens = new Counter({
      name: 'gatehouse_oauth_tokens_total',
      help: 'Token endpoint and revocation outcomes, by grant (authorization_code, refresh_token, revocation, unsupported) and outcome.',
      labelNames: ['grant', 'outcome'],
      registers,
    });
    this.storeWrites = new Histogram({
      name: 'gatehouse_state_store_write_duration_seconds',
      help: 'State store write latency (file: one flush including fsync and rename; redis: one write command).',
      labelNames: ['store'],
      buckets: STORE_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'gatehouse_mcp_sessions',
      help: 'Live MCP sessions held by this process.',
      registers,
      collect() {
        this.set(self.sessions());
      },
    });
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  httpRequest(route: HttpRoute, method: string, status: number, seconds: number): void {
    const label = methodLabel(method);
    this.httpRequests.inc({ route, method: label, status: String(status) });
    this.httpDuration.observe({ route, method: label }, seconds);
  }

  toolCall(backend: string, outcome: ToolCallOutcome): void {
    this.toolCalls.inc({ backend, outcome });
  }

  backendRequest(backend: string, method: string, seconds: number): void {
    this.backendDuration.observe({ backend, method }, seconds);
  }

  /** For `TokenDeps.onOutcome`. */
  readonly tokenOutcome: TokenOutcomeRecorder = (grant, outcome) => {
    this.tokens.inc({ grant, outcome });
  };

  /** For `openStore`'s `onWrite`. */
  readonly storeWrite: StoreWriteRecorder = (store, seconds) => {
    this.storeWrites.observe({ store }, seconds);
  };

  /** Read at scrape time: the backends and whether each is ready. */
  observeBackends(source: () => Array<{ name: string; up: boolean }>): void {
    this.backends = source;
  }

  /** Read at scrape time: the number of live MCP sessions. */
  observeSessions(source: () => number): void {
    this.sessions = source;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * The `/metrics` handler: 404 (returns false) when disabled, 405 for methods other than GET/HEAD,
 * 401 without the configured bearer token (constant-time comparison), else the exposition text.
 * The settings are read on every request, so a reload changes them.
 */
export function metricsEndpoint(metrics: Metrics, settings: () => MetricsConfig): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    const { enabled, bearerToken } = settings();
    if (!enabled) return false;
    req.resume();
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'application/json', JSON.stringify({ error: 'method_not_allowed', error_description: 'use GET' }), { allow: 'GET, HEAD' });
      return true;
    }
    if (bearerToken !== undefined) {
      const { token } = extractBearer(req.headers);
      if (token === undefined || !constantTimeEqual(token, bearerToken)) {
        send(res, 401, 'application/json', JSON.stringify({ error: 'unauthorized', error_description: '/metrics needs "Authorization: Bearer <observability.metrics.bearerToken>"' }), { 'www-authenticate': 'Bearer realm="metrics"' });
        return true;
      }
    }
    const body = await metrics.render();
    send(res, 200, metrics.contentType, req.method === 'HEAD' ? undefined : body);
    return true;
  };
}

function send(res: ServerResponse, status: number, contentType: string, body: string | undefined, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', ...headers });
  res.end(body);
}

/** Seconds elapsed since `started` (a `process.hrtime.bigint()` value). */
export function secondsSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}
