import type { ServerResponse } from 'node:http';

const KEEPALIVE_MS = 25_000;

/**
 * A server-sent-events stream on one HTTP response. Messages are JSON-RPC objects, written as
 * `event: message` frames; a comment line every 25 s keeps proxies from closing an idle stream.
 */
export class SseStream {
  closed = false;
  private keepalive?: NodeJS.Timeout;
  private closeHandlers: Array<() => void> = [];

  constructor(private readonly res: ServerResponse, options: { keepalive?: boolean; headers?: Record<string, string> } = {}) {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      ...options.headers,
    });
    res.flushHeaders();
    res.on('close', () => this.markClosed());
    if (options.keepalive) {
      this.keepalive = setInterval(() => {
        if (!this.closed) res.write(': keepalive\n\n');
      }, KEEPALIVE_MS);
      this.keepalive.unref();
    }
  }

  send(message: unknown): boolean {
    if (this.closed) return false;
    return this.res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`) || true;
  }

  onClose(handler: () => void): void {
    if (this.closed) handler();
    else this.closeHandlers.push(handler);
  }

  end(): void {
    if (this.closed) return;
    this.res.end();
    this.markClosed();
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.keepalive) clearInterval(this.keepalive);
    for (const handler of this.closeHandlers.splice(0)) handler();
  }
}
