import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT, waitFor } from './gateway.js';

export const BIN = join(ROOT, 'bin', 'mcp.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the compiled CLI (`node bin/mcp.js ARGS`) with a minimal environment plus `env`. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface ServedCli {
  child: ChildProcess;
  /** The /mcp URL from the "Gatehouse listening" line. */
  url: string;
  /** Every stderr line, parsed as JSON when it is (else `{ raw }`). */
  lines: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/** Runs `mcp serve --config FILE --http ADDRESS ...` as its own process until the test ends; resolves once it listens. */
export async function serveCli(t: { teardown(fn: () => unknown): void }, configPath: string, http = '127.0.0.1:0', extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ServedCli> {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configPath, '--http', http, ...extraArgs], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const lines: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      lines.push({ raw: line });
    }
  });
  const listening = await waitFor('listening line', () => lines.find((l) => l.msg === 'Gatehouse listening'), 30_000);
  return { child, url: String(listening.url), lines, exited };
}
