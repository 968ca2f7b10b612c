#!/usr/bin/env node
// `npm run bench`: the same load, side by side in one run, against a backend directly and through
// Gatehouse; prints ratios and writes bench/results/latest.json. See bench/README.md.
// Options (env): BENCH_SECONDS (per measurement, default 3), BENCH_ROUNDS (default 3),
// BENCH_QUICK=1 (one round of 1 s, small catalogue: a smoke run).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { Pool, request } from 'undici';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const QUICK = process.env.BENCH_QUICK === '1';
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 1 : 3));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3));
const CATALOGUE = QUICK ? { backends: 5, tools: 50 } : { backends: 50, tools: 200 };
const IDLE_SESSIONS = QUICK ? 200 : 1000;
const BACKEND = join(ROOT, 'bench', 'backend.mjs');
const CLI = join(ROOT, 'bin', 'mcp.js');
const SECRET = 'bench-secret-0123456789-0123456789-0123456789';
const work = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
const children = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
process.on('SIGINT', () => process.exit(130));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function spawnTracked(command, args, env = {}) {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(child);
  return child;
}

async function startBackend() {
  const child = spawnTracked(process.execPath, [BACKEND, 'http']);
  const port = await new Promise((resolve) => child.stdout.on('data', (d) => {
    const m = /listening (\d+)/.exec(String(d));
    if (m) resolve(Number(m[1]));
  }));
  return { url: `http://127.0.0.1:${port}/mcp`, child };
}

async function waitReady(base, timeoutMs = 120_000) {
  const started = Date.now();
  for (;;) {
    try {
      const res = await request(`${base}/readyz`);
      await res.body.dump();
      if (res.statusCode === 200) return Date.now() - started;
    } catch { /* not listening yet */ }
    if (Date.now() - started > timeoutMs) throw new Error(`${base} not ready`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts `mcp serve` on `config`; returns its base URL, pid and cold start to ready (ms). */
async function startGateway(name, config) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const path = join(work, `${name}.json`);
  writeFileSync(path, JSON.stringify(config(issuer)));
  const started = Date.now();
  const child = spawnTracked(process.execPath, [CLI, 'serve', '--config', path, '--http', `127.0.0.1:${port}`]);
  await waitReady(issuer);
  return { base: issuer, pid: child.pid, child, coldStartMs: Date.now() - started };
}

function aclRules(count) {
  const rules = [];
  for (let i = 0; i < count - 1; i++) rules.push({ roles: [`team-${i}`], tools: [`nothing_${i}__*`], policy: 'allow' });
  rules.push({ roles: ['bench'], tools: ['*'], policy: 'allow' });
  return rules;
}

function gatewayConfig(backends, extra = {}) {
  return (issuer) => ({
    mcpServers: backends,
    serverAuth: {
      providers: ['bearer', 'oauth_as'],
      bearer: { tokens: { 'bench-static-token-0000000000': { subject: 'bench-static', roles: ['bench'] } } },
      oauthAs: { issuerUrl: issuer, jwtSecret: SECRET, consent: 'never', injectedRoles: ['bench'], registration: { ratePerMinute: 100000 } },
    },
    acl: { default: 'deny', rules: aclRules(100) },
    stateStore: { type: 'file', path: join(work, `state-${randomBytes(4).toString('hex')}.json`) },
    aggregation: { startupWaitMs: 60000 },
    ...extra,
  });
}

/** Our own AS, driven headlessly: register, authorize with the trusted header, exchange. */
async function oauthTokens(base) {
  const redirect = 'http://127.0.0.1:9/cb';
  const reg = await request(`${base}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: `bench-${randomBytes(3).toString('hex')}`, redirect_uris: [redirect] }) });
  const { client_id: clientId } = await reg.body.json();
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const url = new URL(`${base}/oauth/authorize`);
  for (const [k, v] of Object.entries({ response_type: 'code', client_id: clientId, redirect_uri: redirect, code_challenge: challenge, code_challenge_method: 'S256', resource: `${base}/mcp` })) url.searchParams.set(k, v);
  const auth = await request(url, { headers: { 'x-forwarded-user': 'bench-user', 'x-forwarded-groups': 'bench' } });
  await auth.body.dump();
  const code = new URL(auth.headers.location).searchParams.get('code');
  const token = await request(`${base}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: redirect, client_id: clientId }).toString() });
  const json = await token.body.json();
  return { clientId, access: json.access_token, refresh: json.refresh_token };
}

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** An MCP session over one keep-alive pool: initialize, then `call(method, params)`. */
async function session(mcpUrl, token, connections) {
  const url = new URL(mcpUrl);
  const pool = new Pool(url.origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const auth = token ? { authorization: `Bearer ${token}` } : {};
  const init = await pool.request({ path: url.pathname, method: 'POST', headers: { ...JSON_HEADERS, ...auth }, body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } }) });
  await init.body.text();
  const headers = { ...JSON_HEADERS, ...auth, 'mcp-session-id': init.headers['mcp-session-id'], 'mcp-protocol-version': '2025-06-18' };
  const note = await pool.request({ path: url.pathname, method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
  await note.body.dump();
  let id = 1;
  return {
    async call(method, params) {
      const res = await pool.request({ path: url.pathname, method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: id++, method, params }) });
      const text = await res.body.text();
      if (res.statusCode !== 200 || !text.includes('"result"')) throw new Error(`${method} failed: ${res.statusCode} ${text.slice(0, 200)}`);
      return text;
    },
    close: () => pool.close(),
  };
}

/** `concurrency` workers calling `fn` for SECONDS; returns rps and latency percentiles (ms). */
async function load(fn, concurrency, seconds = SECONDS) {
  const latencies = [];
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await fn();
      latencies.push(performance.now() - t0);
    }
  }));
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), n: latencies.length };
}

function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

function rssKb(pid, field = 'VmRSS') {
  const match = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : 0;
}

async function main() {
  console.log(`Gatehouse bench: ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${ROUNDS} round(s) of ${SECONDS} s`);
  const backend = await startBackend();
  const viaHttp = await startGateway('gw-http', gatewayConfig({ echo: { url: backend.url, transport: 'streamable-http' } }));
  const viaStdio = await startGateway('gw-stdio', gatewayConfig({ echo: { command: process.execPath, args: [BACKEND, 'stdio'] } }));
  const tokens = await oauthTokens(viaHttp.base);
  const stdioTokens = await oauthTokens(viaStdio.base);

  const targets = {
    direct: { url: backend.url, tool: 'echo' },
    gatewayHttp: { url: `${viaHttp.base}/mcp`, token: tokens.access, tool: 'echo__echo', pid: viaHttp.pid },
    gatewayStdio: { url: `${viaStdio.base}/mcp`, token: stdioTokens.access, tool: 'echo__echo', pid: viaStdio.pid },
  };
  const results = {};
  for (const concurrency of [1, 32]) {
    const sessions = {};
    for (const [name, target] of Object.entries(targets)) sessions[name] = await session(target.url, target.token, concurrency);
    const runs = Object.fromEntries(Object.keys(targets).map((n) => [n, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, target] of Object.entries(targets)) {
        const cpuBefore = target.pid ? cpuSeconds(target.pid) : 0;
        const result = await load(() => sessions[name].call('tools/call', { name: target.tool, arguments: { text: 'hello' } }), concurrency);
        if (target.pid) result.cpuMsPerRequest = ((cpuSeconds(target.pid) - cpuBefore) * 1000) / result.n;
        runs[name].push(result);
      }
    }
    for (const [name, list] of Object.entries(runs)) {
      results[`${name}_c${concurrency}`] = {
        rps: median(list.map((r) => r.rps)),
        p50: median(list.map((r) => r.p50)),
        p99: median(list.map((r) => r.p99)),
        ...(list[0].cpuMsPerRequest !== undefined ? { cpuMsPerRequest: median(list.map((r) => r.cpuMsPerRequest)) } : {}),
      };
    }
    for (const s of Object.values(sessions)) await s.close();
  }

  // Refresh grant throughput with the durable file store (each worker rotates its own family).
  const refresh = {};
  for (const concurrency of [1, 16]) {
    const families = await Promise.all(Array.from({ length: concurrency }, () => oauthTokens(viaHttp.base)));
    const pool = new Pool(viaHttp.base, { connections: concurrency });
    const list = [];
    for (let round = 0; round < ROUNDS; round++) {
      let worker = 0;
      list.push(await load(async () => {
        const family = families[worker++ % concurrency];
        const res = await pool.request({ path: '/oauth/token', method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: family.refresh, client_id: family.clientId }).toString() });
        const json = await res.body.json();
        if (res.statusCode !== 200) throw new Error(`refresh failed: ${JSON.stringify(json)}`);
        family.refresh = json.refresh_token;
      }, concurrency));
    }
    await pool.close();
    refresh[`file_c${concurrency}`] = { rps: median(list.map((r) => r.rps)), p50: median(list.map((r) => r.p50)) };
  }

  // tools/list over a large catalogue with the 100-rule ACL, next to one tools/call.
  const many = {};
  for (let i = 0; i < CATALOGUE.backends; i++) many[`b${i}`] = { command: process.execPath, args: [BACKEND, 'stdio'], env: { TOOLS: String(CATALOGUE.tools) } };
  const big = await startGateway('gw-catalogue', gatewayConfig(many));
  const bigTokens = await oauthTokens(big.base);
  const bigSession = await session(`${big.base}/mcp`, bigTokens.access, 1);
  const list = await load(() => bigSession.call('tools/list', {}), 1, Math.max(1, SECONDS));
  const call = await load(() => bigSession.call('tools/call', { name: 'b0__echo', arguments: { text: 'x' } }), 1, Math.max(1, SECONDS));
  await bigSession.close();
  const catalogue = { backends: CATALOGUE.backends, toolsPerBackend: CATALOGUE.tools, listP50: list.p50, callP50: call.p50, coldStartMs: big.coldStartMs };

  // Memory per idle MCP session.
  const rssBefore = rssKb(viaHttp.pid);
  const idle = [];
  for (let i = 0; i < IDLE_SESSIONS; i++) idle.push(await session(`${viaHttp.base}/mcp`, tokens.access, 1));
  await new Promise((r) => setTimeout(r, 500));
  const rssAfter = rssKb(viaHttp.pid);
  for (const s of idle) await s.close();
  const memory = { sessions: IDLE_SESSIONS, kbPerSession: (rssAfter - rssBefore) / IDLE_SESSIONS, peakRssMb: Math.max(rssKb(viaHttp.pid, 'VmHWM'), rssKb(viaStdio.pid, 'VmHWM')) / 1024 };

  const ratios = {
    http_c32_throughput: results.gatewayHttp_c32.rps / results.direct_c32.rps,
    http_c1_p50: results.gatewayHttp_c1.p50 / results.direct_c1.p50,
    stdio_c32_throughput_vs_direct_http: results.gatewayStdio_c32.rps / results.direct_c32.rps,
    stdio_c1_p50_vs_direct_http: results.gatewayStdio_c1.p50 / results.direct_c1.p50,
    list_p50_vs_call_p50: catalogue.listP50 / catalogue.callP50,
  };
  const output = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, model: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30) },
    node: process.version,
    rounds: ROUNDS,
    seconds: SECONDS,
    toolsCall: results,
    refresh,
    catalogue,
    memory,
    coldStartMs: { gatewayHttp: viaHttp.coldStartMs, gatewayStdio: viaStdio.coldStartMs },
    ratios,
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.json'), JSON.stringify(output, null, 2) + '\n');

  const f = (n, d = 1) => (n === undefined ? '-' : n.toFixed(d));
  console.log('\ntools/call            rps     p50 ms  p99 ms  gateway CPU ms/req');
  for (const [name, r] of Object.entries(results)) console.log(`${name.padEnd(20)} ${f(r.rps, 0).padStart(6)}  ${f(r.p50, 2).padStart(6)}  ${f(r.p99, 2).padStart(6)}  ${f(r.cpuMsPerRequest, 3)}`);
  console.log('\nrefresh grant (file store, durable):', Object.entries(refresh).map(([k, v]) => `${k} ${f(v.rps, 0)} rps`).join(', '));
  console.log(`tools/list over ${catalogue.backends} x ${catalogue.toolsPerBackend} tools, 100-rule ACL: p50 ${f(catalogue.listP50, 2)} ms (one tools/call: ${f(catalogue.callP50, 2)} ms); cold start ${catalogue.coldStartMs} ms`);
  console.log(`memory: ${f(memory.kbPerSession, 1)} KB per idle session (${memory.sessions}), peak RSS ${f(memory.peakRssMb, 0)} MB`);
  console.log('\nratios (gateway / direct):');
  for (const [k, v] of Object.entries(ratios)) console.log(`  ${k.padEnd(36)} ${f(v, 2)}`);
  console.log(`\nwritten: bench/results/latest.json`);
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
