#!/usr/bin/env node
// `npm run bench`: the same load, side by side in one run, against a backend directly, through
// Gatehouse and through a peer proxy from npm (mcp-hub); Gatehouse's refresh grant next to
// oidc-provider's; prints ratios and the targets and writes bench/results/latest.json.
// See bench/README.md.
// Options (env): BENCH_SECONDS (per measurement, default 3), BENCH_ROUNDS (default 3),
// BENCH_QUICK=1 (one round of 1 s, small catalogue, 200 idle sessions: a smoke run).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { BACKEND, CLIENT_MALLOC, QUICK, ROOT, ROUNDS, SECONDS, clientEnv, cpuSeconds, isBenchClient, load, rssKb, session, sleep, spawnTracked, summarize, waitForOutput } from './lib.mjs';
import { SECRET, gatewayConfig, gatewayRefreshTarget, oauthTokens, startGateway } from './gatehouse.mjs';
import { REDIS_PERSISTENCE_LABEL, ensurePeers, peerEchoTool, sseSession, startMcpHub, startOidcProvider, startRedis } from './peers.mjs';
import { inspector } from './heap.mjs';
import { printReport, ratios, targets } from './report.mjs';

const CATALOGUE = QUICK ? { backends: 5, tools: 50 } : { backends: 50, tools: 200 };
const IDLE_SESSIONS = QUICK ? 200 : 1000;
const skipped = {};

/** Runs `start`; on failure records why under `skipped[what]` and returns undefined. */
async function optional(what, start) {
  try {
    const result = await start();
    if (result?.skipped) {
      skipped[what] = result.skipped;
      return undefined;
    }
    return result;
  } catch (error) {
    skipped[what] = error.message;
    return undefined;
  }
}

function backendUrl(child) {
  return waitForOutput(child, /listening (\d+)/).then(([, port]) => `http://127.0.0.1:${port}/mcp`);
}

/** Every measured tools/call must come back as the backend's echo, not as an error result. */
function echoed(response, target) {
  const ok = typeof response === 'string'
    ? response.includes('"text":"hello"') && !response.includes('"isError":true')
    : response.result?.content?.[0]?.text === 'hello' && !response.result.isError;
  if (!ok) throw new Error(`${target}: tools/call did not echo: ${(typeof response === 'string' ? response : JSON.stringify(response)).slice(0, 300)}`);
}

/**
 * Measures every one of `names` once per round, alternating (A B C A B C …), and summarizes each
 * one's rounds (medians), so that a busy stretch of the host weighs on all of them alike.
 */
async function alternating(names, measure) {
  const runs = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of names) runs[name].push(await measure(name));
  }
  return Object.fromEntries(names.map((name) => [name, summarize(runs[name])]));
}

/** `run()`'s load result, with the CPU the process `pid` spent per request during it (ms) when there is one. */
async function withCpu(pid, run) {
  const before = pid ? cpuSeconds(pid) : 0;
  const result = await run();
  if (pid) result.cpuMsPerRequest = ((cpuSeconds(pid) - before) * 1000) / result.n;
  return result;
}

/** tools/call at concurrency 1 and 32, targets alternating, medians over the rounds. */
async function toolsCall(targets) {
  const results = {};
  for (const concurrency of [1, 32]) {
    const sessions = {};
    for (const [name, target] of Object.entries(targets)) sessions[name] = await target.open(concurrency);
    const summaries = await alternating(Object.keys(targets), (name) => {
      const { pid, tool } = targets[name];
      return withCpu(pid, () => load(async () => echoed(await sessions[name].call('tools/call', { name: tool, arguments: { text: 'hello' } }), name), concurrency));
    });
    for (const [name, summary] of Object.entries(summaries)) results[`${name}_c${concurrency}`] = summary;
    for (const s of Object.values(sessions)) await s.close();
  }
  return results;
}

/**
 * Refresh grant at concurrency 1 and 16, targets alternating per round. Each worker owns one refresh
 * token family (fresh families per concurrency level) and rotates it on every call.
 */
async function refreshGrant(targets) {
  const results = {};
  for (const concurrency of [1, 16]) {
    const state = {};
    for (const [name, target] of Object.entries(targets)) {
      state[name] = {
        families: await Promise.all(Array.from({ length: concurrency }, () => target.family())),
        pool: new Pool(target.base, { connections: concurrency, pipelining: 1, keepAliveTimeout: 60_000 }),
      };
    }
    const summaries = await alternating(Object.keys(targets), (name) => {
      const { families, pool } = state[name];
      return withCpu(targets[name].pid, () => load((worker) => targets[name].refresh(pool, families[worker]), concurrency));
    });
    for (const [name, { pool }] of Object.entries(state)) {
      await pool.close();
      results[`${name}_c${concurrency}`] = summaries[name];
    }
  }
  return results;
}

/**
 * KB per idle MCP session, on a gateway of its own started with the inspector: full GC and
 * process.memoryUsage() before and after opening the sessions (kept open through the second reading).
 * The sessions share one keep-alive pool of 8 connections, so the figure is session state, not sockets.
 */
async function idleSessionMemory(backend) {
  const gateway = await startGateway('gw-memory', gatewayConfig({ echo: { url: backend, transport: 'streamable-http' } }), { nodeArgs: ['--inspect=127.0.0.1:0'] });
  const devtools = await inspector(gateway.child);
  const { access } = await oauthTokens(gateway.base);
  const pool = new Pool(gateway.base, { connections: 8, pipelining: 1, keepAliveTimeout: 60_000 });
  // Warm up: the first session loads code paths once; it is not counted.
  const warm = await session(`${gateway.base}/mcp`, access, 1, pool);
  await warm.call('tools/call', { name: 'echo__echo', arguments: { text: 'warm' } });
  // RSS is read a second after the GC, once V8 has handed freed pages back; it is for reference only.
  const settle = async () => {
    const usage = await devtools.memoryAfterGc();
    await sleep(1000);
    return { usage, rss: rssKb(gateway.pid) };
  };
  const before = await settle();
  const idle = [];
  for (let i = 0; i < IDLE_SESSIONS; i += 8) {
    idle.push(...await Promise.all(Array.from({ length: Math.min(8, IDLE_SESSIONS - i) }, () => session(`${gateway.base}/mcp`, access, 1, pool))));
  }
  await sleep(500);
  const after = await settle();
  devtools.close();
  await pool.close();
  const heapBytes = (m) => m.heapUsed + m.external; // `external` already includes `arrayBuffers`
  return {
    sessions: idle.length,
    kbPerSession: (heapBytes(after.usage) - heapBytes(before.usage)) / 1024 / idle.length,
    rssKbPerSession: (after.rss - before.rss) / idle.length,
    before: before.usage,
    after: after.usage,
  };
}

async function main() {
  console.log(`Gatehouse bench: ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${ROUNDS} round(s) of ${SECONDS} s${QUICK ? ' (quick)' : ''}`);
  const peersMissing = ensurePeers();
  if (peersMissing) {
    skipped.mcpHub = peersMissing;
    skipped.oidcProvider = peersMissing;
  }
  const backend = spawnTracked(process.execPath, [BACKEND, 'http']);
  const direct = await backendUrl(backend);
  const viaHttp = await startGateway('gw-http', gatewayConfig({ echo: { url: direct, transport: 'streamable-http' } }));
  const viaStdio = await startGateway('gw-stdio', gatewayConfig({ echo: { command: process.execPath, args: [BACKEND, 'stdio'] } }));
  const tokens = await oauthTokens(viaHttp.base);
  const stdioTokens = await oauthTokens(viaStdio.base);
  const forwarder = spawnTracked(process.execPath, [join(ROOT, 'bench', 'forwarder.mjs'), direct, SECRET]);
  const forwarderUrl = await backendUrl(forwarder);
  const hub = peersMissing ? undefined : await optional('mcpHub', async () => {
    const started = await startMcpHub();
    if (started.skipped) return started;
    const probe = await sseSession(started.origin, '/mcp', 1);
    const { tool, listed } = await peerEchoTool(probe);
    await probe.close();
    const { version } = JSON.parse(readFileSync(join(ROOT, 'bench', 'peers', 'node_modules', 'mcp-hub', 'package.json'), 'utf8'));
    console.log(`peer: mcp-hub ${version} on ${started.origin}/mcp, tools/list: ${JSON.stringify(listed)}`);
    return { ...started, peer: { name: 'mcp-hub', version, transport: 'legacy HTTP+SSE (GET /mcp, POST /messages)', backend: 'stdio', tool, listed, config: started.config } };
  });
  const peer = hub?.peer;

  const callTargets = {
    direct: { open: (c) => session(direct, undefined, c), tool: 'echo' },
    gatewayHttp: { open: (c) => session(`${viaHttp.base}/mcp`, tokens.access, c), tool: 'echo__echo', pid: viaHttp.pid },
    gatewayStdio: { open: (c) => session(`${viaStdio.base}/mcp`, stdioTokens.access, c), tool: 'echo__echo', pid: viaStdio.pid },
    minimalForwarder: { open: (c) => session(forwarderUrl, tokens.access, c), tool: 'echo__echo', pid: forwarder.pid },
    ...(hub ? { peerMcpHubStdio: { open: (c) => sseSession(hub.origin, '/mcp', c), tool: peer.tool, pid: hub.pid } } : {}),
  };
  const toolsCallResults = await toolsCall(callTargets);

  // Refresh grant: Gatehouse on the file store, on Redis, and oidc-provider.
  const redis = await optional('redis', startRedis);
  const viaRedis = redis ? await optional('redis', () => startGateway('gw-redis', gatewayConfig({ echo: { url: direct, transport: 'streamable-http' } }, { stateStore: { type: 'redis', url: redis.url } }))) : undefined;
  const oidc = peersMissing ? undefined : await optional('oidcProvider', startOidcProvider);
  const refreshTargets = {
    file: gatewayRefreshTarget(viaHttp),
    ...(viaRedis ? { redis: gatewayRefreshTarget(viaRedis) } : {}),
    ...(oidc ? { oidcProvider: oidc } : {}),
  };
  const refresh = await refreshGrant(refreshTargets);

  // tools/list over a large catalogue with the 100-rule ACL, next to one tools/call.
  const many = {};
  for (let i = 0; i < CATALOGUE.backends; i++) many[`b${i}`] = { command: process.execPath, args: [BACKEND, 'stdio'], env: { TOOLS: String(CATALOGUE.tools) } };
  const big = await startGateway('gw-catalogue', gatewayConfig(many));
  const bigTokens = await oauthTokens(big.base);
  const bigSession = await session(`${big.base}/mcp`, bigTokens.access, 1);
  const catalogueTargets = {
    list: () => bigSession.callBytes('tools/list', {}),
    call: () => bigSession.call('tools/call', { name: 'b0__echo', arguments: { text: 'x' } }),
  };
  // The 50 backends have only just started: a second of each first, then alternating rounds.
  for (const fn of Object.values(catalogueTargets)) await load(fn, 1, 1);
  const { list, call } = await alternating(Object.keys(catalogueTargets), (name) => load(catalogueTargets[name], 1, Math.max(1, SECONDS)));
  await bigSession.close();
  const catalogue = { backends: CATALOGUE.backends, toolsPerBackend: CATALOGUE.tools, listP50: list.p50, callP50: call.p50, coldStartMs: big.coldStartMs };

  const peakRssMbByProcess = {
    gatewayHttp: rssKb(viaHttp.pid, 'VmHWM') / 1024,
    gatewayStdio: rssKb(viaStdio.pid, 'VmHWM') / 1024,
    ...(viaRedis ? { gatewayRedis: rssKb(viaRedis.pid, 'VmHWM') / 1024 } : {}),
    ...(hub ? { peerMcpHub: rssKb(hub.pid, 'VmHWM') / 1024 } : {}),
    ...(oidc ? { oidcProvider: rssKb(oidc.pid, 'VmHWM') / 1024 } : {}),
  };
  const memory = {
    ...(await idleSessionMemory(direct)),
    peakRssMb: Math.max(peakRssMbByProcess.gatewayHttp, peakRssMbByProcess.gatewayStdio),
    peakRssMbByProcess,
  };

  const output = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, model: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30) },
    node: process.version,
    loadClient: { env: CLIENT_MALLOC },
    quick: QUICK,
    rounds: ROUNDS,
    seconds: SECONDS,
    toolsCall: toolsCallResults,
    peer,
    refresh,
    refreshSetup: {
      ...(redis ? { redis: { version: redis.version, persistence: REDIS_PERSISTENCE_LABEL } } : {}),
      ...(oidc ? { oidcProvider: { version: JSON.parse(readFileSync(join(ROOT, 'bench', 'peers', 'node_modules', 'oidc-provider', 'package.json'), 'utf8')).version, adapter: 'in-memory (default)', rotateRefreshToken: true, scope: 'offline_access' } } : {}),
    },
    catalogue,
    memory,
    coldStartMs: { gatewayHttp: viaHttp.coldStartMs, gatewayStdio: viaStdio.coldStartMs, gatewayCatalogue: big.coldStartMs, ...(viaRedis ? { gatewayRedis: viaRedis.coldStartMs } : {}), ...(hub ? { peerMcpHub: hub.coldStartMs } : {}) },
    skipped,
  };
  output.ratios = ratios(output);
  output.targets = targets(output.ratios);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.json'), JSON.stringify(output, null, 2) + '\n');
  printReport(output);
  console.log('\nwritten: bench/results/latest.json');
  process.exit(0);
}

if (isBenchClient()) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else {
  // The load client runs with its own allocator settings (lib.mjs, CLIENT_MALLOC): glibc reads them at
  // process start, so the bench starts itself again with them; what it spawns gets the original ones.
  const { status, signal } = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], { stdio: 'inherit', env: clientEnv() });
  process.exit(status ?? (signal === 'SIGINT' ? 130 : 1));
}
