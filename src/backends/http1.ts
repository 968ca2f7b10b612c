import net from 'node:net';
import tls from 'node:tls';
import { EarliestDeadline } from './earliest-deadline.js';

/**
 * A lean HTTP/1.1 client for the gateway's hot path: the POSTs of established Streamable HTTP
 * backend sessions. One exchange per connection at a time (no pipelining), keep-alive reuse, one
 * write per request, and a response reader that hands the body over as it arrives (JSON bodies and
 * SSE streams alike). Everything else a backend connection needs (the handshake, the GET stream,
 * resumption, DELETE) goes through the SDK's transport on undici.
 *
 * The reader is strict where framing is concerned (RFC 9112): CRLF line ends, no obsolete line
 * folding, `Transfer-Encoding` only `chunked`, one consistent `Content-Length`, no bytes after the
 * end of a response. Anything else fails the exchange and closes its connection.
 */

/**
 * A response's header fields: names lower-cased, repeated fields joined with ", ". A few fields
 * looked up once or twice: two short arrays searched in order cost less than a Map built per
 * response (hashing every fresh name, growing twice).
 */
export class ResponseHeaders {
  private readonly names: string[] = [];
  private readonly values: string[] = [];

  get(name: string): string | undefined {
    const at = this.names.indexOf(name);
    return at < 0 ? undefined : this.values[at];
  }

  has(name: string): boolean {
    return this.names.includes(name);
  }

  /** Adds a field (`name` lower-cased); a repeated one is joined to the first. */
  add(name: string, value: string): void {
    const at = this.names.indexOf(name);
    if (at < 0) {
      this.names.push(name);
      this.values.push(value);
    } else {
      this.values[at] = `${this.values[at]}, ${value}`;
    }
  }
}

export interface ExchangeHandler {
  /** Status and header fields. */
  onHead(status: number, headers: ResponseHeaders): void;
  /** A piece of the body; the handler may keep it (it is never reused). */
  onData(chunk: Buffer): void;
  onEnd(): void;
  /** The exchange failed (the connection is closed); called at most once, and never after onEnd. */
  onError(error: Error): void;
}

export interface Exchange {
  /** Gives up on the exchange: its connection is closed and `onError(reason)` is called. */
  abort(reason: Error): void;
}

export interface PostRequest {
  path: string;
  /** Header lines after Host, each `name: value\r\n`, checked by `headerLines`. */
  headerLines: string;
  body: string;
  /** Longest wait for the response head and between body chunks (ms). */
  idleTimeoutMs: number;
}

export class Http1Error extends Error {
  override name = 'Http1Error';
}

const MAX_HEAD_BYTES = 64 * 1024;
const MAX_LINE_BYTES = 8 * 1024;
/** Idle connections are closed before the server would (Node's default keep-alive is 5 s). */
const DEFAULT_KEEP_ALIVE_MS = 4_000;
const KEEP_ALIVE_MARGIN_MS = 1_000;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FORBIDDEN_VALUE = /[\r\n\0]/;
/** The field lines after the status line, each `\r\nname:value` (RFC 9112 §5). */
const FIELD_LINES = /^(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*)*$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/;
const DIGITS = /^\d{1,15}$/;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;[^\r\n]*)?$/;
const CRLF_CRLF = Buffer.from('\r\n\r\n');

/** HTTP's optional whitespace: space and horizontal tab. */
function isOptionalWhitespace(code: number): boolean {
  return code === 32 || code === 9;
}

/** Field names are mostly lower-case already (HTTP/2-style servers, the SDK's own headers). */
function lowerCase(name: string): string {
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code >= 65 && code <= 90) return name.toLowerCase();
  }
  return name;
}

function hasToken(list: string, token: string): boolean {
  if (list === token) return true;
  return list.includes(token) && list.split(',').some((item) => item.trim() === token);
}

/** Formats request headers, refusing names and values that could split or smuggle a request. */
export function headerLines(headers: Record<string, string>): string {
  let lines = '';
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) throw new Http1Error(`invalid header name ${JSON.stringify(name)}`);
    if (FORBIDDEN_VALUE.test(value)) throw new Http1Error(`invalid value for header ${name}`);
    lines += `${name}: ${value}\r\n`;
  }
  return lines;
}

/** A server sends the same `Keep-Alive` value on every response: the last one is read once. */
let lastHint: { text: string; ms: number | undefined } = { text: '', ms: undefined };

/** The `timeout=N` parameter of a `Keep-Alive` header, in ms. */
function keepAliveTimeoutMs(hint: string): number | undefined {
  if (hint !== lastHint.text) {
    const timeout = /(?:^|[,;]\s*)timeout=(\d+)/i.exec(hint);
    lastHint = { text: hint, ms: timeout ? Number(timeout[1]) * 1000 : undefined };
  }
  return lastHint.ms;
}

type Phase = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'until-close' | 'done' | 'stopped';

/** Reads one response from the bytes of a connection. */
export class ResponseReader {
  phase: Phase = 'head';
  /** The connection may carry another exchange after this one. */
  keepAlive = true;
  /** The server's `Keep-Alive: timeout=N`, in ms. */
  keepAliveHintMs?: number;
  private pendingHead?: Buffer;
  private line = '';
  private remaining = 0;

  constructor(private readonly handler: Pick<ExchangeHandler, 'onHead' | 'onData'>) {}

  /** Consumes one chunk of the connection; throws Http1Error on a framing error. */
  feed(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && this.phase !== 'stopped') {
      switch (this.phase) {
        case 'head': {
          if (this.pendingHead) {
            chunk = Buffer.concat([this.pendingHead, chunk.subarray(offset)]);
            offset = 0;
            this.pendingHead = undefined;
          }
          const end = chunk.indexOf(CRLF_CRLF, offset);
          if (end < 0) {
            if (chunk.length - offset > MAX_HEAD_BYTES) throw new Http1Error('response head too large');
            this.pendingHead = Buffer.from(chunk.subarray(offset));
            return;
          }
          if (end - offset > MAX_HEAD_BYTES) throw new Http1Error('response head too large');
          this.head(chunk.toString('latin1', offset, end));
          offset = end + 4;
          break;
        }
        case 'length':
        case 'chunk-data': {
          const take = Math.min(this.remaining, chunk.length - offset);
          this.handler.onData(take === chunk.length ? chunk : chunk.subarray(offset, offset + take));
          offset += take;
          this.remaining -= take;
          if (this.remaining === 0) this.phase = this.phase === 'length' ? 'done' : 'chunk-end';
          break;
        }
        case 'until-close':
          this.handler.onData(offset === 0 ? chunk : chunk.subarray(offset));
          return;
        case 'chunk-size':
        case 'chunk-end':
        case 'trailers': {
          const newline = chunk.indexOf(10, offset);
          const piece = chunk.toString('latin1', offset, newline < 0 ? chunk.length : newline + 1);
          if (this.line.length + piece.length > MAX_LINE_BYTES) throw new Http1Error('chunk line too long');
          if (newline < 0) {
            this.line += piece;
            return;
          }
          const line = this.line + piece;
          this.line = '';
          offset = newline + 1;
          if (!line.endsWith('\r\n')) throw new Http1Error('bare LF in a chunked body');
          this.chunkLine(line.slice(0, -2));
          break;
        }
        case 'done':
          throw new Http1Error('unexpected bytes after the response');
      }
    }
  }

  /** The exchange was given up (from a handler callback, say): nothing more is read or handed over. */
  stop(): void {
    this.phase = 'stopped';
  }

  /** The connection ended: true when that completes the response (a body read until close). */
  end(): boolean {
    if (this.phase === 'until-close') this.phase = 'done';
    return this.phase === 'done';
  }

  private head(text: string): void {
    let end = text.indexOf('\r\n');
    if (end < 0) end = text.length;
    const status = STATUS_LINE.exec(text.slice(0, end));
    if (!status) throw new Http1Error('malformed status line');
    const code = Number(status[2]);
    // One scan checks every field line's shape (a token, a colon, no bare CR or LF); each field is
    // then cut out with two searches instead of a regex and a trim per line.
    if (!FIELD_LINES.test(end === text.length ? '' : text.slice(end))) throw new Http1Error('malformed header line');
    const headers = new ResponseHeaders();
    while (end < text.length) {
      const start = end + 2;
      end = text.indexOf('\r\n', start);
      if (end < 0) end = text.length;
      const colon = text.indexOf(':', start);
      let from = colon + 1;
      let to = end;
      while (from < to && isOptionalWhitespace(text.charCodeAt(from))) from++;
      while (to > from && isOptionalWhitespace(text.charCodeAt(to - 1))) to--;
      headers.add(lowerCase(text.slice(start, colon)), text.slice(from, to));
    }
    if (code < 200) {
      // Interim responses (100 Continue, 103 Early Hints) precede the real one; upgrades are refused.
      if (code === 101) throw new Http1Error('unexpected protocol upgrade');
      return;
    }
    const connection = headers.get('connection')?.toLowerCase();
    if (status[1] === '0') this.keepAlive = connection !== undefined && hasToken(connection, 'keep-alive');
    else if (connection !== undefined && hasToken(connection, 'close')) this.keepAlive = false;
    const hint = headers.get('keep-alive');
    if (hint !== undefined) this.keepAliveHintMs = keepAliveTimeoutMs(hint);
    this.handler.onHead(code, headers);
    this.framing(code, headers);
  }

  private framing(code: number, headers: ResponseHeaders): void {
    if (code === 204 || code === 304) {
      this.phase = 'done';
      return;
    }
    const coding = headers.get('transfer-encoding');
    if (coding !== undefined) {
      if (coding.trim().toLowerCase() !== 'chunked') throw new Http1Error(`unsupported transfer coding "${coding}"`);
      // Both framings at once: chunked wins and the connection is not reused (RFC 9112 §6.3).
      if (headers.has('content-length')) this.keepAlive = false;
      this.phase = 'chunk-size';
      return;
    }
    const length = headers.get('content-length');
    if (length !== undefined) {
      // Repeated Content-Length headers (joined with ", ") must all say the same.
      const values = length.includes(',') ? new Set(length.split(',').map((v) => v.trim())) : undefined;
      const only = values ? (values.size === 1 ? [...values][0]! : '') : length;
      if (!DIGITS.test(only)) throw new Http1Error('invalid Content-Length');
      this.remaining = Number(only);
      this.phase = this.remaining === 0 ? 'done' : 'length';
      return;
    }
    this.keepAlive = false;
    this.phase = 'until-close';
  }

  private chunkLine(line: string): void {
    if (this.phase === 'chunk-end') {
      if (line !== '') throw new Http1Error('missing CRLF after chunk data');
      this.phase = 'chunk-size';
    } else if (this.phase === 'chunk-size') {
      const size = CHUNK_SIZE.exec(line);
      if (!size) throw new Http1Error('malformed chunk size');
      this.remaining = parseInt(size[1]!, 16);
      this.phase = this.remaining === 0 ? 'trailers' : 'chunk-data';
    } else if (line === '') {
      this.phase = 'done'; // end of the trailer section (trailers themselves are ignored)
    }
  }
}

interface Active {
  handler: ExchangeHandler;
  reader: ResponseReader;
}

class Connection {
  exchange?: Active;
  /** When this connection, idle in the pool, stops being safe to reuse (its keep-alive window ends). */
  idleUntil = 0;
  keepAliveMs = DEFAULT_KEEP_ALIVE_MS;
  private lastError?: Error;

  /** The pool hands the socket's reads to `onData`. */
  constructor(private readonly pool: Http1Pool, readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('error', (error) => (this.lastError = error));
    socket.on('close', () => this.onClose());
    socket.on('timeout', () => this.fail(new Http1Error('the backend did not answer in time')));
  }

  /** Idle, open and still inside its keep-alive window at `now`. */
  reusable(now: number): boolean {
    return now < this.idleUntil && !this.socket.destroyed;
  }

  start(request: PostRequest, handler: ExchangeHandler, host: string): void {
    const reader = new ResponseReader(handler);
    this.exchange = { handler, reader };
    // Re-arming a socket timeout allocates a timer: done only when the value changes (Node
    // restarts it on every read and write). An idle connection is closed by the pool's sweep.
    if (this.socket.timeout !== request.idleTimeoutMs) this.socket.setTimeout(request.idleTimeoutMs);
    this.socket.write(`POST ${request.path} HTTP/1.1\r\nhost: ${host}\r\n${request.headerLines}content-length: ${Buffer.byteLength(request.body)}\r\n\r\n${request.body}`);
  }

  fail(error: Error): void {
    const active = this.exchange;
    this.exchange = undefined;
    active?.reader.stop();
    this.socket.destroy();
    active?.handler.onError(error);
  }

  onData(chunk: Buffer): void {
    const active = this.exchange;
    if (!active) {
      this.socket.destroy(); // bytes nobody asked for
      return;
    }
    try {
      active.reader.feed(chunk);
    } catch (error) {
      if (this.exchange === active) this.fail(error as Error);
      return;
    }
    // The handler may have aborted the exchange from one of its callbacks: it is over then.
    if (this.exchange !== active || active.reader.phase !== 'done') return;
    this.exchange = undefined;
    if (active.reader.keepAliveHintMs !== undefined) this.keepAliveMs = Math.min(DEFAULT_KEEP_ALIVE_MS, active.reader.keepAliveHintMs - KEEP_ALIVE_MARGIN_MS);
    if (active.reader.keepAlive && this.keepAliveMs > 0) {
      this.pool.release(this);
    } else {
      this.socket.destroy();
    }
    active.handler.onEnd();
  }

  private onClose(): void {
    this.pool.forget(this);
    const active = this.exchange;
    if (!active) return;
    this.exchange = undefined;
    if (!this.lastError && active.reader.end()) active.handler.onEnd();
    else active.handler.onError(this.lastError ?? new Http1Error('the backend closed the connection before the response ended'));
  }
}

/** Keep-alive connections to one origin (http or https), at most `maxConnections` at a time. */
export class Http1Pool {
  private readonly idle: Connection[] = [];
  private readonly connections = new Set<Connection>();
  private readonly queue: Array<{ start(connection: Connection): void; handler: ExchangeHandler }> = [];
  private readonly host: string;
  private readonly connectOptions: { host: string; port: number; servername?: string };
  private readonly secure: boolean;
  private closed = false;
  /** Closes idle connections at the end of their keep-alive window; armed while some are idle. */
  private readonly sweep = new EarliestDeadline(() => this.sweepIdle(), Date.now, false);

  constructor(origin: string, private readonly maxConnections = 256) {
    const url = new URL(origin);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Http1Error(`unsupported protocol ${url.protocol}`);
    this.secure = url.protocol === 'https:';
    this.host = url.host;
    const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port || (this.secure ? 443 : 80));
    this.connectOptions = { host: hostname, port, ...(this.secure && net.isIP(hostname) === 0 ? { servername: hostname } : {}) };
  }

  post(request: PostRequest, handler: ExchangeHandler): Exchange {
    let connection: Connection | undefined;
    let aborted = false;
    const waiting = {
      handler,
      start: (c: Connection) => {
        connection = c;
        c.start(request, handler, this.host);
      },
    };
    if (this.closed) {
      queueMicrotask(() => handler.onError(new Http1Error('the connection pool is closed')));
      return { abort() {} };
    }
    const ready = this.take();
    if (ready) waiting.start(ready);
    else if (this.connections.size < this.maxConnections) waiting.start(this.connect());
    else this.queue.push(waiting);
    return {
      abort: (reason) => {
        if (aborted) return;
        aborted = true;
        if (connection) {
          if (connection.exchange?.handler === handler) connection.fail(reason);
          return;
        }
        const at = this.queue.indexOf(waiting);
        if (at >= 0) this.queue.splice(at, 1);
        handler.onError(reason);
      },
    };
  }

  /** Stops taking requests; waits up to `graceMs` for exchanges in flight, then closes everything. */
  async close(graceMs: number): Promise<void> {
    this.closed = true;
    this.sweep.disarm();
    for (const waiting of this.queue.splice(0)) waiting.handler.onError(new Http1Error('the gateway is shutting down'));
    for (const connection of this.idle.splice(0)) connection.socket.destroy();
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    for (const connection of this.connections) connection.fail(new Http1Error('the gateway is shutting down'));
  }

  /** A finished exchange hands its connection back. */
  release(connection: Connection): void {
    if (this.closed) {
      connection.socket.destroy();
      return;
    }
    const next = this.queue.shift();
    if (next) {
      next.start(connection);
      return;
    }
    connection.idleUntil = Date.now() + connection.keepAliveMs;
    this.idle.push(connection);
    this.sweep.arm(connection.idleUntil);
  }

  /** Closes the idle connections whose keep-alive window is over; comes back for the others. */
  private sweepIdle(): void {
    const now = Date.now();
    let nextExpiry = Infinity;
    const kept: Connection[] = [];
    for (const connection of this.idle) {
      if (connection.reusable(now)) {
        kept.push(connection);
        nextExpiry = Math.min(nextExpiry, connection.idleUntil);
      } else {
        connection.socket.destroy();
      }
    }
    this.idle.splice(0, this.idle.length, ...kept);
    if (nextExpiry !== Infinity) this.sweep.arm(nextExpiry);
  }

  forget(connection: Connection): void {
    this.connections.delete(connection);
    const at = this.idle.indexOf(connection);
    if (at >= 0) this.idle.splice(at, 1);
    const next = this.closed ? undefined : this.queue.shift();
    if (next) next.start(this.connect());
  }

  /** The most recently used idle connection still inside its keep-alive window. */
  private take(): Connection | undefined {
    const now = Date.now();
    for (;;) {
      const connection = this.idle.pop();
      if (!connection) return undefined;
      if (connection.reusable(now)) return connection;
      connection.socket.destroy();
    }
  }

  private connect(): Connection {
    let connection: Connection;
    if (this.secure) {
      connection = new Connection(this, tls.connect({ ...this.connectOptions, ALPNProtocols: ['http/1.1'] }));
      connection.socket.on('data', (chunk: Buffer) => connection.onData(chunk));
    } else {
      // Plain TCP reads go straight to the connection (`onread`), without a readable stream's push
      // and 'data' event per read; each read is copied out of the shared buffer first.
      const socket = net.connect({
        ...this.connectOptions,
        onread: {
          buffer: sharedReadBuffer,
          callback: (length: number, buffer: Uint8Array) => {
            connection.onData(Buffer.from(buffer.subarray(0, length)));
            return true;
          },
        },
      });
      connection = new Connection(this, socket);
    }
    this.connections.add(connection);
    return connection;
  }
}

/** Where plain TCP connections read: each read is handled (copied) before the next one. */
const sharedReadBuffer = Buffer.allocUnsafe(64 * 1024);
