import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { McpError, ErrorCode, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Cancellation } from './cancellation.js';
import { EarliestDeadline } from './earliest-deadline.js';

/** A JSON-RPC message as it travels to and from a backend (already parsed JSON, not schema-checked). */
export interface WireMessage {
  jsonrpc: '2.0';
  id?: string | number | null;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
}

/**
 * What the channel can do to a message in flight: `abandon()` is called when we stop waiting for
 * its answer (timeout, cancellation, connection closed). A sender that holds something open for
 * the answer (an HTTP response) sets it to close that; `abandoned` tells it that already happened.
 */
export interface SendTicket {
  abandoned: boolean;
  abandon?: () => void;
}

/** Sends one message to the backend; for HTTP it also delivers what the response carries. */
export type WireSender = (message: WireMessage, ticket: SendTicket) => Promise<void>;

interface Pending {
  resolve(result: Record<string, unknown>): void;
  reject(error: unknown): void;
  /** `performance.now()` after which the request times out. */
  deadline: number;
  timeoutMs: number;
  stopListening?: () => void;
  ticket: SendTicket;
}

export interface ChannelRequestOptions {
  timeoutMs: number;
  cancellation?: Cancellation;
}

/**
 * The gateway's own requests to one backend connection, correlated by string ids the SDK client
 * never uses (its ids are numbers). The SDK `Client` still does the handshake and answers what the
 * backend sends on its own (notifications, sampling...); forwarded requests skip its per-request
 * machinery (result schema parsing, abort plumbing), which is most of a proxied call's CPU.
 */
export class RequestChannel {
  private readonly pending = new Map<string, Pending>();
  private nextId = 0;
  private closedWith?: unknown;
  /** Armed for the earliest deadline of the requests in flight, while there are any. */
  private readonly deadlines = new EarliestDeadline(() => this.expire(), () => performance.now(), true);

  constructor(
    private readonly send: WireSender,
    private readonly notify: (method: string, params: Record<string, unknown>) => Promise<void>,
  ) {}

  /**
   * Puts the channel in front of the SDK client on `transport`: responses to our ids settle our
   * requests, everything else goes on to the client as before. Call after `client.connect()`.
   */
  intercept(transport: Transport): void {
    const next = transport.onmessage;
    transport.onmessage = (message, extra) => {
      if (!this.accept(message as WireMessage)) next?.call(transport, message as JSONRPCMessage, extra);
    };
  }

  /** Settles the request `message` answers; false when it is not a response to one of ours. */
  accept(message: WireMessage): boolean {
    if (typeof message.id !== 'string' || message.method !== undefined) return false;
    const pending = this.pending.get(message.id);
    if (!pending) return message.id.startsWith(ID_PREFIX); // a late answer to a request we gave up on
    this.finish(message.id, pending);
    if (message.error) pending.reject(new McpError(message.error.code, message.error.message, message.error.data));
    else pending.resolve(message.result ?? {});
    return true;
  }

  request(method: string, params: Record<string, unknown> | undefined, options: ChannelRequestOptions): Promise<Record<string, unknown>> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const { cancellation } = options;
    if (cancellation?.aborted) return Promise.reject(cancellation.reason);
    const id = `${ID_PREFIX}${++this.nextId}`;
    return new Promise((resolve, reject) => {
      const pending: Pending = {
        resolve,
        reject,
        ticket: { abandoned: false },
        deadline: performance.now() + options.timeoutMs,
        timeoutMs: options.timeoutMs,
      };
      this.deadlines.arm(pending.deadline);
      if (cancellation) {
        pending.stopListening = cancellation.onAbort((reason) => this.giveUp(id, reason, String(reason instanceof Error ? reason.message : reason ?? 'cancelled')));
      }
      this.pending.set(id, pending);
      const message: WireMessage = params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params };
      this.send(message, pending.ticket).catch((error: unknown) => {
        const current = this.pending.get(id);
        if (!current) return;
        this.finish(id, current);
        current.reject(error);
      });
    });
  }

  /** Fails every request in flight (the connection is gone) and any later one. */
  close(error: unknown = new McpError(ErrorCode.ConnectionClosed, 'Connection closed')): void {
    this.closedWith = error;
    for (const [id, pending] of this.pending) {
      this.finish(id, pending);
      abandon(pending.ticket);
      pending.reject(error);
    }
  }

  get inflight(): number {
    return this.pending.size;
  }

  private finish(id: string, pending: Pending): void {
    this.pending.delete(id);
    pending.stopListening?.();
    // Nothing left in flight: nothing to wait for (and nothing keeping the process alive).
    if (this.pending.size === 0) this.deadlines.disarm();
  }

  /** Times out the requests past their deadline, then waits for the earliest of the others. */
  private expire(): void {
    const now = performance.now();
    let next = Infinity;
    for (const [id, pending] of this.pending) {
      if (pending.deadline <= now) this.giveUp(id, new McpError(ErrorCode.RequestTimeout, 'Request timed out', { timeout: pending.timeoutMs }), 'timeout');
      else next = Math.min(next, pending.deadline);
    }
    if (next !== Infinity) this.deadlines.arm(next);
  }

  /** Our side stops waiting (timeout or caller cancelled): the backend is told, as the spec asks. */
  private giveUp(id: string, error: unknown, reason: string): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    this.finish(id, pending);
    pending.reject(error);
    this.notify('notifications/cancelled', { requestId: id, reason }).catch(() => {});
    abandon(pending.ticket);
  }
}

const ID_PREFIX = 'gatehouse-';

function abandon(ticket: SendTicket): void {
  ticket.abandoned = true;
  ticket.abandon?.();
}
