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
 * POSTs one message of an established Streamable HTTP session with a plain undici request (no
 * WHATWG fetch, Headers or web streams on the hot path) and delivers what comes back: a JSON
 * body or an SSE stream, whose non-answer messages (progress, logging, sampling requests) go to
 * `deliver`. If an SSE stream breaks after an event id and before the answer, the SDK transport
 * resumes it with Last-Event-ID, as the spec describes; its messages reach the same handler.
 */
export function httpPoster(options: HttpPostOptions): WireSender {
  const url = new URL(options.url);
  const origin = url.origin;
  const path = `${url.pathname}${url.search}`;
  const dispatcher: Dispatcher = dispatcherFor(options.url);
  const { transport, deliver } = options;

  return async (message, abandoned) => {
    const headers: Record<string, string> = {
      ...options.headers,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    const sessionId = transport.sessionId;
    if (sessionId) headers['mcp-session-id'] = sessionId;
    const version = transport.protocolVersion;
    if (version) headers['mcp-protocol-version'] = version;
    const response = await dispatcher.request({
      origin,
      path,
      method: 'POST',
      headers,
      body: JSON.stringify(message),
      headersTimeout: options.idleTimeoutMs,
      bodyTimeout: options.idleTimeoutMs,
      signal: abandoned,
    });
    const status = response.statusCode;
    if (status === 202) {
      await response.body.dump();
      return;
    }
    if (status !== 200) {
      const text = await response.body.text().catch(() => '');
      if (status === 404 && sessionId) {
        options.onSessionLost();
        throw new McpError(ErrorCode.ConnectionClosed, 'the backend ended its session; reconnecting');
      }
      throw new McpError(ErrorCode.InternalError, `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`);
    }
    const expectsAnswer = message.id !== undefined && message.method !== undefined;
    const type = String(response.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type === 'application/json') {
      const text = await response.body.text();
      if (!text) return;
      const parsed = JSON.parse(text) as WireMessage | WireMessage[];
      for (const item of Array.isArray(parsed) ? parsed : [parsed]) deliver(item);
      return;
    }
    if (type !== 'text/event-stream') {
      await response.body.dump();
      if (expectsAnswer) throw new McpError(ErrorCode.InternalError, `unexpected content type ${type || '(none)'}`);
      return;
    }
    let answered = false;
    let lastEventId: string | undefined;
    const parser = createParser({
      onEvent(event) {
        if (event.id) lastEventId = event.id;
        if (event.event !== undefined && event.event !== 'message') return;
        if (!event.data) return; // a priming event carries only an id
        const item = JSON.parse(event.data) as WireMessage;
        if (item.id === message.id && item.method === undefined) answered = true;
        deliver(item);
      },
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body) parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
    } catch (error) {
      if (abandoned?.aborted || !expectsAnswer || answered || !lastEventId) throw error;
    }
    if (!expectsAnswer || answered || abandoned?.aborted) return;
    if (lastEventId) {
      await transport.resumeStream(lastEventId);
      return;
    }
    throw new McpError(ErrorCode.ConnectionClosed, 'the backend closed the response stream without answering');
  };
}
