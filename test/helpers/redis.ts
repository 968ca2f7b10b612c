/**
 * A real `redis-server` for the Redis store tests: on a free 127.0.0.1 port, its data in a temporary
 * directory, killed (and the directory removed) at teardown. `stop()` / `restart()` simulate an outage on the same port and data
 * directory (with `persistent: true` the server runs with `appendonly yes` + `appendfsync always`, so
 * every acknowledged write survives the restart).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './oauth.js';
import { requireSystemBinary, type SystemBinary } from './system.js';

export const REDIS_SERVER: SystemBinary = { names: ['redis-server'], debianPackage: 'redis-server' };

interface Tap {
  teardown(fn: () => unknown): void;
  plan(n: number, comment?: string): void;
  fail(message: string): unknown;
}

export interface RedisServer {
  port: number;
  url: string;
  dir: string;
  /** SIGTERM (or SIGKILL with `hard`) and wait for the process to exit. */
  stop(options?: { hard?: boolean }): Promise<void>;
  /** Starts redis-server again on the same port and directory; resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Whether the process is running. */
  running(): boolean;
}

export interface RedisServerOptions {
  /** appendonly yes + appendfsync always (data survives stop/restart). Default false: no persistence. */
  persistent?: boolean;
}

/**
 * Starts redis-server, or returns undefined after skipping (no binary on a developer machine) or
 * failing (`GATEHOUSE_REQUIRE_SYSTEM_DEPS=1`) the test; the caller then returns.
 */
export async function startRedis(t: Tap, options: RedisServerOptions = {}): Promise<RedisServer | undefined> {
  const binary = requireSystemBinary(t, REDIS_SERVER);
  if (!binary) return undefined;
  // Not t.testdir(): a later t.testdir() call in the same test (startAsGateway makes one) wipes it,
  // which would delete the AOF under the running server.
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-redis-'));
  const port = await freePort();
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--daemonize', 'no',
    '--protected-mode', 'yes',
    '--logfile', '',
    '--loglevel', 'warning',
    ...(options.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
  ];
  let child: ChildProcess | undefined;
  let output = '';

  const launch = async () => {
    output = '';
    const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout!.on('data', (d) => (output += d));
    proc.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output.slice(-2000)}`))));
    exited.catch(() => undefined);
    await Promise.race([waitForPort(port, 10_000), exited]);
  };

  const stop = async ({ hard = false } = {}) => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await gone;
  };

  t.teardown(async () => {
    await stop({ hard: true });
    rmSync(dir, { recursive: true, force: true });
  });
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    stop,
    restart: launch,
    running: () => !!child && child.exitCode === null && child.signalCode === null,
  };
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
