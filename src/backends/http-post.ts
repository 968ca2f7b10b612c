import { createParser } from 'eventsource-parser';
import { McpError, ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Dispatcher } from 'undici';
import type { WireMessage, WireSender } from './channel.js';
import { dispatcherFor } from './dispatcher.js';

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

/**
 * POSTs one message of an established Streamable HTTP session with a raw undici dispatch (no
 * WHATWG fetch, Headers, web streams or Readable body on the hot path) and delivers what comes
 * back: a JSON body or an SSE stream, whose non-answer messages (progress, logging, sampling
 * requests) go to `deliver`. If an SSE stream breaks after an event id and before the answer, the
 * SDK transport resumes it with Last-Event-ID, as the spec describes; its messages reach the same
 * handler. An abandoned request's exchange is aborted (its socket closed).
 */
export function httpPoster(options: HttpPostOptions): WireSender {
  const url = new URL(options.url);
  const origin = url.origin;
  const path = `${url.pathname}${url.search}`;
  const dispatcher: Dispatcher = dispatcherFor(options.url);
  const { transport, deliver } = options;

  return (message, ticket) => new Promise<void>((resolve, reject) => {
    const headers: Record<string, string> = {
      ...options.headers,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    const sessionId = transport.sessionId;
    if (sessionId) headers['mcp-session-id'] = sessionId;
    const version = transport.protocolVersion;
    if (version) headers['mcp-protocol-version'] = version;
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

    // A raw dispatch handler: no Readable body, no Headers object, one callback per event.
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(controller) {
        const abort = () => controller.abort(new Error('request abandoned'));
        if (ticket.abandoned) abort();
        else ticket.abandon = abort;
      },
      onResponseStart(_controller, statusCode, responseHeaders) {
        status = statusCode;
        const type = String(responseHeaders['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        kind = statusCode === 200 && type === 'text/event-stream' ? 'sse' : statusCode === 200 && type === 'application/json' ? 'json' : 'other';
        if (kind === 'sse') {
          sse = openStream();
          decoder = new TextDecoder();
        }
      },
      onResponseData(controller, chunk) {
        if (kind !== 'sse') {
          chunks.push(chunk);
          return;
        }
        try {
          sse!.feed(decoder!.decode(chunk, { stream: true }));
        } catch (error) {
          settle(error);
          controller.abort(error as Error);
        }
      },
      onResponseEnd() {
        try {
          finish();
        } catch (error) {
          settle(error);
        }
      },
      onResponseError(_controller, error) {
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

    dispatcher.dispatch({
      origin,
      path,
      method: 'POST',
      headers,
      body: JSON.stringify(message),
      headersTimeout: options.idleTimeoutMs,
      bodyTimeout: options.idleTimeoutMs,
    }, handler);
  });
}
