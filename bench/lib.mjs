// Shared pieces of `npm run bench`: settings, child processes, the load function, MCP sessions.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { Pool, request } from 'undici';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const QUICK = process.env.BENCH_QUICK === '1';
export const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 1 : 3));
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3));
export const BACKEND = join(ROOT, 'bench', 'backend.mjs');
export const CLI = join(ROOT, 'bin', 'mcp.js');
export const work = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));

/**
 * The load client's own glibc heap (`bench/run.mjs` sets this up): with the default thresholds it
 * hands freed memory above 128 KB back to the kernel and faults it in again, which for a client
 * reading ~100 KB answers turned into ~30 page faults per call in some stretches of a run and
 * tripled its CPU per call while the gateway's stayed the same. The processes under test keep the
 * environment the bench was started with.
 */
export const CLIENT_MALLOC = { MALLOC_TRIM_THRESHOLD_: String(32 * 2 ** 20), MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20) };
const ORIGINAL_ENV_KEY = 'GATEHOUSE_BENCH_ORIGINAL_MALLOC';
export const isBenchClient = () => process.env[ORIGINAL_ENV_KEY] !== undefined;
export function clientEnv() {
  const original = Object.fromEntries(Object.keys(CLIENT_MALLOC).filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
  return { ...process.env, ...CLIENT_MALLOC, [ORIGINAL_ENV_KEY]: JSON.stringify(original) };
}
/** The environment of every process the bench starts: the one the bench itself was started with. */
const CHILD_ENV = (() => {
  if (!isBenchClient()) return process.env;
  const env = { ...process.env };
  for (const k of Object.keys(CLIENT_MALLOC)) delete env[k];
  delete env[ORIGINAL_ENV_KEY];
  return { ...env, ...JSON.parse(process.env[ORIGINAL_ENV_KEY]) };
})();

/** Every process the bench starts; all are killed when it exits, however it exits, and `work` is removed. */
export const children = [];
process.on('exit', () => {
  children.forEach((c) => c.kill('SIGKILL'));
  rmSync(work, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
export const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Spawns a tracked child. With `log` (a file path) its stdout and stderr go to that file, so the bench
 * process spends nothing on a chatty child's output while it measures; otherwise both are piped and
 * drained, the first 64 KB kept. `child.text()` returns what it printed so far either way.
 */
export function spawnTracked(command, args, { env = {}, cwd, log } = {}) {
  const fd = log ? openSync(log, 'a') : undefined;
  const child = spawn(command, args, { cwd, env: { ...CHILD_ENV, ...env }, stdio: ['ignore', fd ?? 'pipe', fd ?? 'pipe'] });
  children.push(child);
  if (fd !== undefined) {
    closeSync(fd);
    child.text = () => readFileSync(log, 'utf8');
  } else {
    let output = '';
    const keep = (d) => { if (output.length < 65_536) output += String(d); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.text = () => output;
  }
  return child;
}

/** Resolves with the first match of `pattern` in what the child printed; rejects if it exits first. */
export async function waitForOutput(child, pattern, timeoutMs = 60_000) {
  const started = Date.now();
  for (;;) {
    const m = pattern.exec(child.text());
    if (m) return m;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`process exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}: ${child.text().slice(-800)}`);
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${pattern}: ${child.text().slice(-800)}`);
    await sleep(20);
  }
}

/** Polls `${base}/readyz` until 200; fails early when `child` exits, and says what it saw last. */
export async function waitReady(base, child, timeoutMs = 120_000) {
  const started = Date.now();
  let last = 'no answer';
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`${base} exited (${child.exitCode ?? child.signalCode}) before ready: ${child.text().slice(-800)}`);
    try {
      const res = await request(`${base}/readyz`);
      const text = await res.body.text();
      if (res.statusCode === 200) return Date.now() - started;
      last = `${res.statusCode} ${text.slice(0, 300)}`;
    } catch (error) {
      last = error.code ?? error.message;
    }
    if (Date.now() - started > timeoutMs) throw new Error(`${base} not ready after ${timeoutMs} ms (last /readyz: ${last}) ${child ? child.text().slice(-800) : ''}`);
    await sleep(20);
  }
}

/**
 * `concurrency` workers calling `fn(worker)` for `seconds`; `worker` is the worker's index, so state
 * that must not be shared between concurrent calls (a refresh token family) can be kept per worker.
 * Returns rps and latency percentiles (ms).
 */
export async function load(fn, concurrency, seconds = SECONDS) {
  const latencies = [];
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await fn(worker);
      latencies.push(performance.now() - t0);
    }
  }));
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), n: latencies.length };
}

/** Medians over rounds of `load` results (and of CPU per request when measured). */
export function summarize(list) {
  return {
    rps: median(list.map((r) => r.rps)),
    p50: median(list.map((r) => r.p50)),
    p99: median(list.map((r) => r.p99)),
    ...(list[0].cpuMsPerRequest !== undefined ? { cpuMsPerRequest: median(list.map((r) => r.cpuMsPerRequest)) } : {}),
  };
}

export const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/**
 * A Streamable HTTP MCP session over a keep-alive pool: initialize, then `call(method, params)`.
 * Pass `pool` to share one pool between many sessions (it is then not closed by `close`).
 */
export async function session(mcpUrl, token, connections, sharedPool) {
  const url = new URL(mcpUrl);
  const pool = sharedPool ?? new Pool(url.origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const auth = token ? { authorization: `Bearer ${token}` } : {};
  const init = await pool.request({ path: url.pathname, method: 'POST', headers: { ...JSON_HEADERS, ...auth }, body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } }) });
  const initText = await init.body.text();
  if (init.statusCode !== 200 || !init.headers['mcp-session-id']) throw new Error(`initialize failed: ${init.statusCode} ${initText.slice(0, 200)}`);
  const headers = { ...JSON_HEADERS, ...auth, 'mcp-session-id': init.headers['mcp-session-id'], 'mcp-protocol-version': '2025-06-18' };
  const note = await pool.request({ path: url.pathname, method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
  await note.body.dump();
  let id = 1;
  const post = (method, params) => pool.request({ path: url.pathname, method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: id++, method, params }) });
  return {
    async call(method, params) {
      const res = await post(method, params);
      const text = await res.body.text();
      if (res.statusCode !== 200 || !text.includes('"result"')) throw new Error(`${method} failed: ${res.statusCode} ${text.slice(0, 200)}`);
      return text;
    },
    /**
     * Like `call`, for a large answer (a catalogue page of ~100 KB): checks that it is a result and
     * returns its size in bytes, without joining and decoding it into one string (less for the
     * client's allocator to map and fault in; see CLIENT_MALLOC).
     */
    async callBytes(method, params) {
      const res = await post(method, params);
      let head = '';
      let bytes = 0;
      for await (const chunk of res.body) {
        if (head.length < 200) head += chunk.toString('latin1', 0, 200 - head.length);
        bytes += chunk.length;
      }
      const error = head.indexOf('"error"');
      const result = head.indexOf('"result"');
      if (res.statusCode !== 200 || result === -1 || (error !== -1 && error < result)) throw new Error(`${method} failed: ${res.statusCode} ${head}`);
      return bytes;
    },
    close: () => (sharedPool ? undefined : pool.close()),
  };
}

export function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

export function rssKb(pid, field = 'VmRSS') {
  const match = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : 0;
}
