import { encodeResponse } from './serialized.js';
import { sendBody } from '../http/respond.js';
import { Cancellation } from '../backends/cancellation.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, SUPPORTED_PROTOCOL_VERSIONS, LATEST_PROTOCOL_VERSION, type ClientCapabilities, type Progress } from '@modelcontextprotocol/sdk/types.js';
import type { Identity } from '../auth/types.js';
import { readBody, BodyError } from '../http/body.js';
import { SseStream } from '../http/sse.js';
import type { Logger } from '../log.js';
import type { RequestNote } from '../http/server.js';
import { Router, RpcError, GATEWAY_NAME, GATEWAY_VERSION } from './router.js';
import { FrontSession, SessionRegistry, ownerKeyOf, requestKey } from './session.js';

type JsonRpcId = string | number;
interface JsonRpcMessage {
  jsonrpc: '2.0';
  id?: JsonRpcId | null;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: unknown;
}

export interface FrontDeps {
  router: Router;
  sessions: SessionRegistry;
  logger: Logger;
  bodyLimit: () => number;
}

const SERVER_CAPABILITIES = {
  tools: { listChanged: true },
  prompts: { listChanged: true },
  resources: { subscribe: true, listChanged: true },
  logging: {},
  completions: {},
};

/**
 * The front MCP Streamable HTTP endpoint (protocol 2025-11-25, 2025-06-18, 2025-03-26), written
 * lean on purpose: every `tools/call` crosses it, so it parses once, dispatches, and writes JSON
 * (or SSE when the client asked for progress). Authentication and the Origin check have already
 * run when these handlers are called.
 */
export class McpFront {
  constructor(private readonly deps: FrontDeps) {}

  async handle(req: IncomingMessage, res: ServerResponse, identity: Identity, note?: RequestNote): Promise<void> {
    switch (req.method) {
      case 'POST':
        return this.post(req, res, identity, note);
      case 'GET':
        return this.get(req, res, identity);
      case 'DELETE':
        return this.delete(req, res, identity);
      default:
        res.setHeader('allow', 'GET, POST, DELETE');
        return httpError(res, 405, ErrorCode.ConnectionClosed, 'Method not allowed');
    }
  }

  /** Common checks for requests that belong to an existing session. */
  private async sessionFor(req: IncomingMessage, res: ServerResponse, identity: Identity): Promise<FrontSession | undefined> {
    const version = header(req, 'mcp-protocol-version');
    if (version !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      httpError(res, 400, ErrorCode.InvalidRequest, `Bad Request: unsupported MCP-Protocol-Version "${version}" (supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`);
      return undefined;
    }
    const id = header(req, 'mcp-session-id');
    if (!id) {
      httpError(res, 400, ErrorCode.InvalidRequest, 'Bad Request: Mcp-Session-Id header is required');
      return undefined;
    }
    const session = await this.deps.sessions.resolve(id, ownerKeyOf(identity));
    if (!session) {
      // Unknown, expired, terminated and someone else's sessions look the same.
      httpError(res, 404, ErrorCode.InvalidRequest, 'Session not found');
      return undefined;
    }
    return session;
  }

  private async post(req: IncomingMessage, res: ServerResponse, identity: Identity, note?: RequestNote): Promise<void> {
    const accept = String(req.headers.accept ?? '');
    const contentType = String(req.headers['content-type'] ?? '');
    if (!/application\/json/i.test(contentType)) {
      return httpError(res, 415, ErrorCode.InvalidRequest, 'Unsupported Media Type: Content-Type must be application/json');
    }
    let body: unknown;
    try {
      const raw = await readBody(req, this.deps.bodyLimit());
      body = JSON.parse(raw.toString('utf8'));
    } catch (error) {
      if (error instanceof BodyError) return httpError(res, error.status, ErrorCode.InvalidRequest, error.message);
      return httpError(res, 400, ErrorCode.ParseError, 'Parse error: body is not valid JSON');
    }
    const batch = Array.isArray(body);
    const messages = (batch ? body : [body]) as JsonRpcMessage[];
    if (messages.length === 0 || !messages.every(isJsonRpcMessage)) {
      return httpError(res, 400, ErrorCode.InvalidRequest, 'Invalid Request: expected a JSON-RPC 2.0 message');
    }

    const initialize = messages.find((m) => m.method === 'initialize');
    if (initialize) {
      if (messages.length > 1) return httpError(res, 400, ErrorCode.InvalidRequest, 'Invalid Request: initialize must be sent alone');
      return this.initialize(initialize, res, identity);
    }

    const session = await this.sessionFor(req, res, identity);
    if (!session) return;

    const requests: JsonRpcMessage[] = [];
    for (const message of messages) {
      if (message.method !== undefined && message.id !== undefined && message.id !== null) requests.push(message);
      else if (message.method !== undefined) this.notification(session, message);
      else session.handleClientResponse(message);
    }
    if (requests.length === 0) {
      res.writeHead(202, { 'content-length': 0 }).end();
      return;
    }

    // Stream when the client asked for progress, or when a per-session backend may send it requests.
    const streaming = /text\/event-stream/i.test(accept) && requests.some((r) =>
      (r.params?._meta && (r.params._meta as Record<string, unknown>).progressToken !== undefined) || this.deps.router.mayRequestClient(session, r.method!, r.params));
    if (!streaming) {
      let payload: string;
      if (!batch) {
        // One request (the usual case): no arrays, no Promise.all.
        const cancellation = new Cancellation();
        res.on('close', () => {
          if (!res.writableFinished) cancellation.abort(new Error('client disconnected'));
        });
        payload = encodeResponse(await this.dispatch(session, identity, requests[0]!, cancellation, undefined, note));
      } else {
        const cancellations = requests.map(() => new Cancellation());
        res.on('close', () => {
          if (!res.writableFinished) cancellations.forEach((c) => c.abort(new Error('client disconnected')));
        });
        const responses = await Promise.all(requests.map((request, i) => this.dispatch(session, identity, request, cancellations[i]!, undefined, note)));
        payload = `[${responses.filter(Boolean).map(encodeResponse).join(',')}]`;
      }
      if (res.writableEnded || res.destroyed) return;
      sendBody(res, 200, { 'content-type': 'application/json' }, payload);
      return;
    }

    const stream = new SseStream(res);
    const cancellations = requests.map(() => new Cancellation());
    stream.onClose(() => cancellations.forEach((c) => c.abort(new Error('client disconnected'))));
    await Promise.all(requests.map(async (request, i) => {
      const response = await this.dispatch(session, identity, request, cancellations[i]!, stream, note);
      if (response) stream.send(response);
    }));
    stream.end();
  }

  private initialize(message: JsonRpcMessage, res: ServerResponse, identity: Identity): void {
    if (message.id === undefined || message.id === null) {
      return httpError(res, 400, ErrorCode.InvalidRequest, 'Invalid Request: initialize must be a request');
    }
    const params = message.params ?? {};
    const requested = typeof params.protocolVersion === 'string' ? params.protocolVersion : '';
    const version = SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION;
    const ownerKey = ownerKeyOf(identity);
    const capabilities = (params.capabilities ?? {}) as ClientCapabilities;
    const session = new FrontSession(this.deps.sessions.newId(ownerKey, version, capabilities), ownerKey, version, capabilities, params.clientInfo as never);
    this.deps.sessions.add(session);
    const result = {
      protocolVersion: version,
      capabilities: SERVER_CAPABILITIES,
      serverInfo: { name: GATEWAY_NAME, title: 'Gatehouse MCP gateway', version: GATEWAY_VERSION },
      instructions: 'Tools, resources and prompts of several MCP servers, each name prefixed with its server ("<server>__<name>").',
    };
    sendBody(res, 200, { 'content-type': 'application/json', 'mcp-session-id': session.id }, JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
  }

  private notification(session: FrontSession, message: JsonRpcMessage): void {
    switch (message.method) {
      case 'notifications/initialized':
        session.initialized = true;
        return;
      case 'notifications/cancelled': {
        const id = message.params?.requestId;
        if (typeof id === 'string' || typeof id === 'number') {
          session.inflight.get(requestKey(id))?.cancellation.abort(new Error(String(message.params?.reason ?? 'cancelled by client')));
        }
        return;
      }
      case 'notifications/roots/list_changed':
        for (const connection of session.connections.values()) {
          void connection.then((backend) => backend.notify({ method: 'notifications/roots/list_changed' }), () => {});
        }
        return;
      default:
        return;
    }
  }

  /** Runs one request; returns its JSON-RPC response, or undefined when it was cancelled by the client. */
  private async dispatch(session: FrontSession, identity: Identity, request: JsonRpcMessage, cancellation: Cancellation, stream?: SseStream, note?: RequestNote): Promise<unknown> {
    const id = request.id as JsonRpcId;
    const key = requestKey(id);
    const inflight = { cancellation, stream, backend: undefined as string | undefined };
    session.inflight.set(key, inflight);
    const progressToken = (request.params?._meta as Record<string, unknown> | undefined)?.progressToken;
    const progress = stream && progressToken !== undefined
      ? (p: Progress) => stream.send({ jsonrpc: '2.0', method: 'notifications/progress', params: { ...p, progressToken } })
      : undefined;
    try {
      const result = await this.deps.router.handle(request.method!, request.params, {
        identity,
        session,
        cancellation,
        progress,
        useBackend: (name) => (inflight.backend = name),
        note,
      });
      return { jsonrpc: '2.0', id, result };
    } catch (error) {
      if (cancellation.aborted) {
        return { jsonrpc: '2.0', id, error: { code: ErrorCode.RequestTimeout, message: 'Request cancelled' } };
      }
      if (error instanceof RpcError) {
        return { jsonrpc: '2.0', id, error: error.data === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, data: error.data } };
      }
      this.deps.logger.error({ err: error instanceof Error ? error.message : String(error), method: request.method }, 'request failed');
      return { jsonrpc: '2.0', id, error: { code: ErrorCode.InternalError, message: 'Internal error' } };
    } finally {
      session.inflight.delete(key);
    }
  }

  private async get(req: IncomingMessage, res: ServerResponse, identity: Identity): Promise<void> {
    if (!/text\/event-stream/i.test(String(req.headers.accept ?? ''))) {
      return httpError(res, 406, ErrorCode.InvalidRequest, 'Not Acceptable: Accept must include text/event-stream');
    }
    const session = await this.sessionFor(req, res, identity);
    if (!session) return;
    const stream = new SseStream(res, { keepalive: true });
    session.getStreams.add(stream);
    stream.onClose(() => session.getStreams.delete(stream));
  }

  private async delete(req: IncomingMessage, res: ServerResponse, identity: Identity): Promise<void> {
    const session = await this.sessionFor(req, res, identity);
    if (!session) return;
    await this.deps.sessions.terminate(session.id);
    sendBody(res, 200, { 'content-type': 'application/json' }, '{}');
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function isJsonRpcMessage(value: unknown): value is JsonRpcMessage {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  const message = value as JsonRpcMessage;
  if (message.jsonrpc !== '2.0') return false;
  if (message.method !== undefined) return typeof message.method === 'string' && (message.params === undefined || (typeof message.params === 'object' && message.params !== null));
  return message.id !== undefined && ('result' in message || 'error' in message);
}

/** An HTTP-level error with a JSON-RPC error body (no id: it may not belong to one request). */
export function httpError(res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  sendBody(res, status, { 'content-type': 'application/json', ...headers }, JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } }));
}
