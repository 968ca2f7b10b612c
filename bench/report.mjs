// Ratios, the issue's targets (issue 6) and the printed table of `npm run bench`.

const div = (a, b) => (a === undefined || b === undefined || !b ? undefined : a / b);

/** Ratios of one run. Throughput: higher is better; latency and memory: lower is better. */
export function ratios({ toolsCall: t, refresh: r, catalogue, memory }) {
  return {
    http_c32_throughput: div(t.gatewayHttp_c32?.rps, t.direct_c32?.rps),
    http_c1_p50: div(t.gatewayHttp_c1?.p50, t.direct_c1?.p50),
    stdio_c32_throughput_vs_direct_http: div(t.gatewayStdio_c32?.rps, t.direct_c32?.rps),
    stdio_c1_p50_vs_direct_http: div(t.gatewayStdio_c1?.p50, t.direct_c1?.p50),
    forwarder_c32_throughput: div(t.minimalForwarder_c32?.rps, t.direct_c32?.rps),
    forwarder_c1_p50: div(t.minimalForwarder_c1?.p50, t.direct_c1?.p50),
    peer_c32_throughput: div(t.peerMcpHubStdio_c32?.rps, t.direct_c32?.rps),
    peer_c1_p50: div(t.peerMcpHubStdio_c1?.p50, t.direct_c1?.p50),
    gateway_stdio_c32_vs_peer: div(t.gatewayStdio_c32?.rps, t.peerMcpHubStdio_c32?.rps),
    refresh_file_c16_vs_oidc_provider: div(r.file_c16?.rps, r.oidcProvider_c16?.rps),
    refresh_redis_c16_vs_oidc_provider: div(r.redis_c16?.rps, r.oidcProvider_c16?.rps),
    refresh_file_c1_vs_oidc_provider: div(r.file_c1?.rps, r.oidcProvider_c1?.rps),
    refresh_redis_c1_vs_oidc_provider: div(r.redis_c1?.rps, r.oidcProvider_c1?.rps),
    list_p50_vs_call_p50: div(catalogue.listP50, catalogue.callP50),
    idle_session_kb: memory.kbPerSession,
  };
}

/** The targets of issue 6, each against this run's figures. */
export function targets(ratio) {
  const list = [
    ['stdio backend via gateway vs HTTP direct, throughput c32', ratio.stdio_c32_throughput_vs_direct_http, '>=', 1.0, '×'],
    ['stdio backend via gateway vs HTTP direct, p50 c1', ratio.stdio_c1_p50_vs_direct_http, '<=', 1.3, '×'],
    ['HTTP backend via gateway, throughput c32', ratio.http_c32_throughput, '>=', 0.70, '×'],
    ['HTTP backend via gateway, p50 c1', ratio.http_c1_p50, '<=', 2.0, '×'],
    ['refresh c16, file store vs oidc-provider', ratio.refresh_file_c16_vs_oidc_provider, '>=', 1.0, '×'],
    ['refresh c16, Redis store vs oidc-provider', ratio.refresh_redis_c16_vs_oidc_provider, '>=', 1.0, '×'],
    ['tools/list (catalogue) p50 vs one tools/call p50', ratio.list_p50_vs_call_p50, '<=', 2.0, '×'],
    ['memory per idle MCP session (heap)', ratio.idle_session_kb, '<=', 30, ' KB'],
  ];
  return list.map(([name, value, op, target, unit]) => ({
    name, value, op, target, unit,
    met: value === undefined ? undefined : op === '>=' ? value >= target : value <= target,
  }));
}

const f = (n, d = 1) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));

export function printReport(output) {
  const { toolsCall, refresh, catalogue, memory, coldStartMs, peer, skipped } = output;
  console.log('\ntools/call               rps     p50 ms  p99 ms  CPU ms/req (gateway or peer process)');
  for (const [name, r] of Object.entries(toolsCall)) console.log(`${name.padEnd(22)} ${f(r.rps, 0).padStart(6)}  ${f(r.p50, 2).padStart(6)}  ${f(r.p99, 2).padStart(6)}  ${f(r.cpuMsPerRequest, 3)}`);
  console.log('  minimalForwarder: bench/forwarder.mjs, JWT check + 100-rule ACL + prefix strip in front of the HTTP backend (reference)');
  if (peer) console.log(`  peer: ${peer.name} ${peer.version} over ${peer.transport}, tool "${peer.tool}"`);
  console.log('\nrefresh grant            rps     p50 ms  p99 ms  CPU ms/req (server process)');
  for (const [name, r] of Object.entries(refresh)) console.log(`${name.padEnd(22)} ${f(r.rps, 0).padStart(6)}  ${f(r.p50, 2).padStart(6)}  ${f(r.p99, 2).padStart(6)}  ${f(r.cpuMsPerRequest, 3)}`);
  console.log('  file: durable file store; redis: Redis store; oidcProvider: oidc-provider, in-memory adapter');
  console.log(`\ntools/list over ${catalogue.backends} x ${catalogue.toolsPerBackend} tools, 100-rule ACL: p50 ${f(catalogue.listP50, 2)} ms (one tools/call: ${f(catalogue.callP50, 2)} ms)`);
  console.log(`memory: ${f(memory.kbPerSession, 1)} KB per idle session on the heap (heapUsed+external after GC, ${memory.sessions} sessions); RSS delta ${f(memory.rssKbPerSession, 1)} KB per session (reference)`);
  console.log(`peak RSS under load: ${f(memory.peakRssMb, 0)} MB; cold start to ready: ${Object.entries(coldStartMs).map(([k, v]) => `${k} ${v} ms`).join(', ')}`);
  for (const [what, why] of Object.entries(skipped)) console.log(`skipped ${what}: ${why}`);
  console.log('\nratios (this run only):');
  for (const [k, v] of Object.entries(output.ratios)) console.log(`  ${k.padEnd(36)} ${f(v, 2)}`);
  console.log('\ntargets (issue 6):');
  for (const t of output.targets) {
    const verdict = t.met === undefined ? 'not measured' : t.met ? 'met' : 'NOT met';
    const digits = t.unit === '×' ? 2 : 1;
    console.log(`  ${t.name.padEnd(56)} ${`${f(t.value, digits)}${t.unit}`.padStart(8)}  target ${t.op} ${f(t.target, digits)}${t.unit}  ${verdict}`);
  }
}
