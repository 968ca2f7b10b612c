import spawn from 'cross-spawn';
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

export interface StdioBackendProcess {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
}

/** One message line longer than this ends the connection (a backend that never sends a newline). */
const MAX_LINE_BYTES = 64 * 1024 * 1024;
/** How long `close` waits after ending stdin, then after SIGTERM, before the next step. */
const CLOSE_STEP_MS = 2_000;

/**
 * The stdio transport to a backend process: newline-delimited JSON-RPC on its stdin and stdout,
 * stderr handed to the caller. Unlike the SDK's, it batches the messages written in one turn of
 * the event loop into one pipe write, and parses incoming lines with `JSON.parse` alone (the
 * gateway forwards results untouched; the SDK client checks the shape of what it handles itself).
 * Shutdown follows the spec: close stdin, then SIGTERM, then SIGKILL.
 */
export class StdioBackendTransport implements Transport {
  onmessage?: (message: JSONRPCMessage) => void;
  onerror?: (error: Error) => void;
  onclose?: () => void;

  private child?: ChildProcess;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private closed = false;

  constructor(private readonly spec: StdioBackendProcess, private readonly onStderr?: (stream: Readable) => void) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): Promise<void> {
    if (this.child) throw new Error('the stdio transport is already started');
    return new Promise((resolve, reject) => {
      const child = spawn(this.spec.command, this.spec.args, {
        env: this.spec.env,
        cwd: this.spec.cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
        shell: false,
        windowsHide: true,
      });
      this.child = child;
      child.once('spawn', () => resolve());
      child.on('error', (error) => {
        reject(error);
        this.onerror?.(error);
      });
      child.once('close', () => {
        this.child = undefined;
        if (!this.closed) {
          this.closed = true;
          this.onclose?.();
        }
      });
      child.stdin!.on('error', (error) => this.onerror?.(error));
      child.stdout!.on('error', (error) => this.onerror?.(error));
      child.stdout!.on('data', (chunk: Buffer) => this.read(chunk));
      if (this.onStderr) this.onStderr(child.stderr!);
      else child.stderr!.resume();
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.child?.stdin;
    if (!stdin || this.closed) return Promise.reject(new Error('Not connected'));
    const ok = stdin.write(`${JSON.stringify(message)}\n`);
    // The first message of a turn leaves at once (no added latency); the ones sent after it in the
    // same turn find the pipe corked and leave together at the turn's end, in one system call.
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      stdin.cork();
      setImmediate(() => {
        this.flushScheduled = false;
        stdin.uncork();
      });
    }
    if (ok) return Promise.resolve();
    return new Promise((resolve) => stdin.once('drain', resolve));
  }

  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const step = () => Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, CLOSE_STEP_MS).unref())]);
    try {
      child.stdin?.end();
    } catch {
      // already gone
    }
    await step();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await step();
    }
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  private read(chunk: Buffer): void {
    let start = 0;
    let newline = chunk.indexOf(0x0a);
    while (newline !== -1) {
      const piece = chunk.subarray(start, newline);
      let line: Buffer;
      if (this.pendingBytes > 0) {
        this.pending.push(piece);
        line = Buffer.concat(this.pending, this.pendingBytes + piece.length);
        this.pending = [];
        this.pendingBytes = 0;
      } else {
        line = piece;
      }
      this.deliver(line);
      start = newline + 1;
      newline = chunk.indexOf(0x0a, start);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.pending.push(rest);
      this.pendingBytes += rest.length;
      if (this.pendingBytes > MAX_LINE_BYTES) {
        this.pending = [];
        this.pendingBytes = 0;
        this.onerror?.(new Error(`the backend wrote a line longer than ${MAX_LINE_BYTES} bytes without a newline`));
        void this.close();
      }
    }
  }

  private deliver(line: Buffer): void {
    const text = line.toString('utf8').trim();
    if (!text) return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.onerror?.(new Error(`the backend wrote a line that is not JSON: ${text.slice(0, 120)}`));
      return;
    }
    if (!message || typeof message !== 'object' || (message as { jsonrpc?: unknown }).jsonrpc !== '2.0') {
      this.onerror?.(new Error(`the backend wrote a line that is not a JSON-RPC 2.0 message: ${text.slice(0, 120)}`));
      return;
    }
    try {
      this.onmessage?.(message as JSONRPCMessage);
    } catch (error) {
      this.onerror?.(error as Error);
    }
  }
}
