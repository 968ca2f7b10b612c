import { createParser } from 'eventsource-parser';
import { McpError, ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { WireMessage, WireSender } from './channel.js';
import { http1PoolFor } from './dispatcher.js';
import { headerLines, type ExchangeHandler } from './http1.js';

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
  const { transport, deliver } = options;
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
    const expectsAnswer = message.id !== undefined && message.method !== undefined;

    let status = 0;
    let kind: 'json' | 'sse' | 'other' = 'other';
    const chunks: Buffer[] = [];
    let answered = false;
    let lastEventId: string | undefined;
    let settled = false;
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      if (error === undefined) resolve();
      else reject(error);
    };
    // Made only for an SSE answer: most answers are one JSON body.
    let sse: { feed(text: string): void } | undefined;
    let decoder: InstanceType<typeof TextDecoder> | undefined;
    const openStream = () => createParser({
      onEvent(event) {
        if (event.id) lastEventId = event.id;
        if (event.event !== undefined && event.event !== 'message') return;
        if (!event.data) return; // a priming event carries only an id
        const item = JSON.parse(event.data) as WireMessage;
        if (item.id === message.id && item.method === undefined) answered = true;
        deliver(item);
      },
    });

    let fail: (error: Error) => void = () => {};
    const handler: ExchangeHandler = {
      onHead(statusCode, responseHeaders) {
        status = statusCode;
        const type = (responseHeaders.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
        kind = statusCode === 200 && type === 'text/event-stream' ? 'sse' : statusCode === 200 && type === 'application/json' ? 'json' : 'other';
        if (kind === 'sse') {
          sse = openStream();
          decoder = new TextDecoder();
        }
      },
      onData(chunk) {
        if (kind !== 'sse') {
          chunks.push(chunk);
          return;
        }
        try {
          sse!.feed(decoder!.decode(chunk, { stream: true }));
        } catch (error) {
          settle(error);
          fail(error as Error);
        }
      },
      onEnd() {
        try {
          finish();
        } catch (error) {
          settle(error);
        }
      },
      onError(error) {
        if (settled) return; // the abort that follows our own failure
        // A stream broken after an event id and before the answer is resumed, as the spec describes.
        if (kind === 'sse' && expectsAnswer && !answered && lastEventId && !ticket.abandoned) {
          transport.resumeStream(lastEventId).then(() => settle(), settle);
          return;
        }
        settle(error);
      },
    };

    const finish = () => {
      if (status === 202) return settle();
      const text = kind === 'sse' ? '' : Buffer.concat(chunks).toString('utf8');
      if (status !== 200) {
        if (status === 404 && sessionId) {
          options.onSessionLost();
          return settle(new McpError(ErrorCode.ConnectionClosed, 'the backend ended its session; reconnecting'));
        }
        return settle(new McpError(ErrorCode.InternalError, `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`));
      }
      if (kind === 'json') {
        if (text) {
          const parsed = JSON.parse(text) as WireMessage | WireMessage[];
          for (const item of Array.isArray(parsed) ? parsed : [parsed]) deliver(item);
        }
        return settle();
      }
      if (kind === 'other') {
        return settle(expectsAnswer ? new McpError(ErrorCode.InternalError, 'unexpected content type from the backend') : undefined);
      }
      if (!expectsAnswer || answered || ticket.abandoned) return settle();
      if (lastEventId) {
        transport.resumeStream(lastEventId).then(() => settle(), settle);
        return;
      }
      settle(new McpError(ErrorCode.ConnectionClosed, 'the backend closed the response stream without answering'));
    };

    if (ticket.abandoned) return settle(new Error('request abandoned'));
    const exchange = pool.post({ path, headerLines: fixedLines + sessionLines, body: JSON.stringify(message), idleTimeoutMs: options.idleTimeoutMs }, handler);
    fail = (error) => exchange.abort(error);
    ticket.abandon = () => exchange.abort(new Error('request abandoned'));
  });
}
