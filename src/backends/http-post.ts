import { createParser } from 'eventsource-parser';
import { McpError, ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { SendTicket, WireMessage, WireSender } from './channel.js';
import { http1PoolFor } from './dispatcher.js';
import { headerLines, type Exchange, type ExchangeHandler, type ResponseHeaders } from './http1.js';

export interface HttpPostOptions {
  url: string;
  /** Extra headers from the backend's configuration. */
  headers: Record<string, string>;
  /** The SDK transport that made the session: its session id and protocol version are reused. */
  transport: StreamableHTTPClientTransport;
  /** Where messages other than the answer go (the SDK client: notifications, server requests). */
  deliver(message: WireMessage): void;
  /** The backend forgot the session (404): the connection must be made again. */
  onSessionLost(): void;
  /** Upper bound on waiting for headers and between body chunks (the request deadline is the caller's). */
  idleTimeoutMs: number;
}

/** Headers the poster sets itself; configured ones of these names are left out. */
const OWN_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'content-type', 'accept', 'mcp-session-id', 'mcp-protocol-version']);

/**
 * POSTs one message of an established Streamable HTTP session on the lean HTTP/1.1 pool (http1.ts:
 * one write per request, no WHATWG fetch, Headers, web streams or Readable body) and delivers what
 * comes back: a JSON body or an SSE stream, whose non-answer messages (progress, logging, sampling
 * requests) go to `deliver`. If an SSE stream breaks after an event id and before the answer, the
 * SDK transport resumes it with Last-Event-ID, as the spec describes; its messages reach the same
 * handler. An abandoned request's exchange is aborted (its socket closed).
 */
export function httpPoster(options: HttpPostOptions): WireSender {
  const url = new URL(options.url);
  const path = `${url.pathname}${url.search}`;
  const pool = http1PoolFor(options.url);
  const { transport } = options;
  const configured = Object.fromEntries(Object.entries(options.headers).filter(([name]) => !OWN_HEADERS.has(name.toLowerCase())));
  const fixedLines = headerLines({ ...configured, 'content-type': 'application/json', accept: 'application/json, text/event-stream' });
  // The session's lines change once per (re)connection: formatted and checked then, not per request.
  let linesFor: [string | undefined, string | undefined] | undefined;
  let sessionLines = '';

  return (message, ticket) => new Promise<void>((resolve, reject) => {
    const sessionId = transport.sessionId;
    const version = transport.protocolVersion;
    if (!linesFor || linesFor[0] !== sessionId || linesFor[1] !== version) {
      sessionLines = headerLines({ ...(sessionId ? { 'mcp-session-id': sessionId } : {}), ...(version ? { 'mcp-protocol-version': version } : {}) });
      linesFor = [sessionId, version];
    }
    if (ticket.abandoned) return reject(new Error('request abandoned'));
    const post = new PostExchange(options, message, ticket, sessionId, resolve, reject);
    const exchange = pool.post({ path, headerLines: fixedLines + sessionLines, body: JSON.stringify(message), idleTimeoutMs: options.idleTimeoutMs }, post);
    post.exchange = exchange;
    ticket.abandon = () => exchange.abort(new Error('request abandoned'));
  });
}

/** One POST and what comes back: a handler object rather than a closure per callback. */
class PostExchange implements ExchangeHandler {
  exchange?: Exchange;
  private status = 0;
  private kind: 'json' | 'sse' | 'other' = 'other';
  private readonly chunks: Buffer[] = [];
  private readonly expectsAnswer: boolean;
  private answered = false;
  private lastEventId?: string;
  private settled = false;
  // Made only for an SSE answer: most answers are one JSON body.
  private sse?: { feed(text: string): void };
  private decoder?: InstanceType<typeof TextDecoder>;

  constructor(
    private readonly options: HttpPostOptions,
    private readonly message: WireMessage,
    private readonly ticket: SendTicket,
    private readonly sessionId: string | undefined,
    private readonly resolve: () => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.expectsAnswer = message.id !== undefined && message.method !== undefined;
  }

  onHead(statusCode: number, responseHeaders: ResponseHeaders): void {
    this.status = statusCode;
    const type = (responseHeaders.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    this.kind = statusCode === 200 && type === 'text/event-stream' ? 'sse' : statusCode === 200 && type === 'application/json' ? 'json' : 'other';
    if (this.kind === 'sse') {
      this.sse = this.openStream();
      this.decoder = new TextDecoder();
    }
  }

  onData(chunk: Buffer): void {
    if (this.kind !== 'sse') {
      this.chunks.push(chunk);
      return;
    }
    try {
      this.sse!.feed(this.decoder!.decode(chunk, { stream: true }));
    } catch (error) {
      this.settle(error);
      this.exchange?.abort(error as Error);
    }
  }

  onEnd(): void {
    try {
      this.finish();
    } catch (error) {
      this.settle(error);
    }
  }

  onError(error: Error): void {
    if (this.settled) return; // the abort that follows our own failure
    // A stream broken after an event id and before the answer is resumed, as the spec describes.
    if (this.kind === 'sse' && this.expectsAnswer && !this.answered && this.lastEventId && !this.ticket.abandoned) {
      this.resume(this.lastEventId);
      return;
    }
    this.settle(error);
  }

  private openStream() {
    return createParser({
      onEvent: (event) => {
        if (event.id) this.lastEventId = event.id;
        if (event.event !== undefined && event.event !== 'message') return;
        if (!event.data) return; // a priming event carries only an id
        const item = JSON.parse(event.data) as WireMessage;
        if (item.id === this.message.id && item.method === undefined) this.answered = true;
        this.options.deliver(item);
      },
    });
  }

  private finish(): void {
    const { status, kind } = this;
    if (status === 202) return this.settle();
    const text = kind === 'sse' ? '' : (this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)).toString('utf8');
    if (status !== 200) {
      if (status === 404 && this.sessionId) {
        this.options.onSessionLost();
        return this.settle(new McpError(ErrorCode.ConnectionClosed, 'the backend ended its session; reconnecting'));
      }
      return this.settle(new McpError(ErrorCode.InternalError, `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`));
    }
    if (kind === 'json') {
      if (text) {
        const parsed = JSON.parse(text) as WireMessage | WireMessage[];
        if (Array.isArray(parsed)) for (const item of parsed) this.options.deliver(item);
        else this.options.deliver(parsed);
      }
      return this.settle();
    }
    if (kind === 'other') {
      return this.settle(this.expectsAnswer ? new McpError(ErrorCode.InternalError, 'unexpected content type from the backend') : undefined);
    }
    if (!this.expectsAnswer || this.answered || this.ticket.abandoned) return this.settle();
    if (this.lastEventId) {
      this.resume(this.lastEventId);
      return;
    }
    this.settle(new McpError(ErrorCode.ConnectionClosed, 'the backend closed the response stream without answering'));
  }

  private resume(lastEventId: string): void {
    this.options.transport.resumeStream(lastEventId).then(() => this.settle(), (error: unknown) => this.settle(error));
  }

  private settle(error?: unknown): void {
    if (this.settled) return;
    this.settled = true;
    if (error === undefined) this.resolve();
    else this.reject(error);
  }
}
