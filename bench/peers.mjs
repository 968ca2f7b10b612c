// What the bench runs next to Gatehouse: oidc-provider (token endpoint), mcp-hub (peer MCP proxy),
// redis-server (Gatehouse's Redis state store). The npm peers live in bench/peers, a package of its
// own, so the project's lock file and its CI install never see them.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool, request } from 'undici';
import { BACKEND, ROOT, work, freePort, sleep, spawnTracked, waitForOutput } from './lib.mjs';

const PEERS = join(ROOT, 'bench', 'peers');
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** Installs bench/peers when its node_modules is absent; returns a reason when the peers cannot run. */
export function ensurePeers() {
  if (existsSync(join(PEERS, 'node_modules'))) return undefined;
  const args = existsSync(join(PEERS, 'package-lock.json')) ? ['ci', '--prefix', 'bench/peers'] : ['install', '--prefix', 'bench/peers'];
  args.push('--no-audit', '--no-fund');
  console.log(`installing bench peers: npm ${args.join(' ')}`);
  const result = spawnSync('npm', args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status === 0) return undefined;
  return `npm ${args[0]} in bench/peers failed (${result.error?.message ?? `exit ${result.status}`})`;
}

// ---------------------------------------------------------------------------------------------
// oidc-provider: refresh grant of the reference Node.js Authorization Server.

const OIDC_CLIENT_ID = 'bench'; // as registered in bench/oidc-provider.mjs
const OIDC_REDIRECT = 'http://127.0.0.1:9/cb';

export async function startOidcProvider() {
  const child = spawnTracked(process.execPath, [join(ROOT, 'bench', 'oidc-provider.mjs')], { log: join(work, 'oidc-provider.log') });
  const [, port] = await waitForOutput(child, /listening (\d+)/);
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    pid: child.pid,
    child,
    family: () => oidcProviderTokens(base),
    async refresh(pool, family) {
      const res = await pool.request({ path: '/token', method: 'POST', headers: FORM, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: family.refresh, client_id: OIDC_CLIENT_ID }).toString() });
      const json = await res.body.json();
      if (res.statusCode !== 200 || !json.refresh_token) throw new Error(`oidc-provider refresh failed: ${res.statusCode} ${JSON.stringify(json)}`);
      family.refresh = json.refresh_token;
    },
  };
}

/**
 * One refresh token from oidc-provider, headlessly: /auth (PKCE, scope offline_access, prompt consent)
 * → /interaction/<uid> (finished by bench/oidc-provider.mjs) → /auth/<uid> → code → /token.
 * Scope `offline_access` alone, without `openid`: no ID token is signed on refresh, so the provider's
 * work per refresh is a new opaque access token and a rotated refresh token, like Gatehouse's.
 */
async function oidcProviderTokens(base) {
  const jar = new Map();
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL(`${base}/auth`);
  for (const [k, v] of Object.entries({
    client_id: OIDC_CLIENT_ID, response_type: 'code', scope: 'offline_access', prompt: 'consent', redirect_uri: OIDC_REDIRECT,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
  })) url.searchParams.set(k, v);
  let location = url.href;
  for (let hop = 0; hop < 6 && !location.startsWith(OIDC_REDIRECT); hop++) {
    const res = await request(new URL(location, base), { headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } });
    for (const cookie of [].concat(res.headers['set-cookie'] ?? [])) {
      const pair = cookie.split(';')[0];
      jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
    }
    const text = await res.body.text();
    if (!res.headers.location) throw new Error(`oidc-provider authorization stopped at ${location}: ${res.statusCode} ${text.slice(0, 200)}`);
    location = new URL(res.headers.location, base).href;
  }
  const code = new URL(location).searchParams.get('code');
  if (!code) throw new Error(`oidc-provider returned no code: ${location}`);
  const res = await request(`${base}/token`, { method: 'POST', headers: FORM, body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: OIDC_REDIRECT, client_id: OIDC_CLIENT_ID }).toString() });
  const json = await res.body.json();
  if (!json.refresh_token) throw new Error(`oidc-provider issued no refresh token: ${JSON.stringify(json)}`);
  return { refresh: json.refresh_token };
}

// ---------------------------------------------------------------------------------------------
// redis-server for Gatehouse's Redis state store.

/** Append-only file, fsync once a second (Redis's usual durable setting); no RDB snapshots. */
export const REDIS_PERSISTENCE = ['--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec'];
export const REDIS_PERSISTENCE_LABEL = "appendonly yes, appendfsync everysec, save ''";

/** Starts redis-server on a free loopback port in a temp dir; returns its URL, or `skipped` with a reason. */
export async function startRedis() {
  const bin = process.env.REDIS_SERVER ?? 'redis-server';
  const probe = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return { skipped: `${bin} not runnable (${probe.error?.code ?? `exit ${probe.status}`})` };
  const port = await freePort();
  const dir = join(work, 'redis');
  mkdirSync(dir, { recursive: true });
  const child = spawnTracked(bin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...REDIS_PERSISTENCE], { log: join(work, 'redis.log') });
  await waitForOutput(child, /Ready to accept connections/);
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid, version: /v=(\S+)/.exec(probe.stdout)?.[1] };
}

// ---------------------------------------------------------------------------------------------
// mcp-hub: the peer MCP proxy, in front of the same backend over stdio.

/** mcp-hub's config for the bench: the stdio backend, one server named `echo`. */
export function mcpHubConfig() {
  return { mcpServers: { echo: { command: process.execPath, args: [BACKEND, 'stdio'] } } };
}

/**
 * Starts mcp-hub (bench/peers) on a free port with `mcpHubConfig()`. It has no host option and
 * listens on every interface: bench/loopback.mjs is preloaded so it listens on 127.0.0.1 only.
 * Its home and XDG directories point into the bench's temp dir (it writes logs and a workspace cache).
 */
export async function startMcpHub() {
  const cli = join(PEERS, 'node_modules', 'mcp-hub', 'dist', 'cli.js');
  if (!existsSync(cli)) return { skipped: 'bench/peers/node_modules/mcp-hub is missing' };
  const port = await freePort();
  const home = join(work, 'mcp-hub-home');
  mkdirSync(home, { recursive: true });
  const configPath = join(work, 'mcp-hub.json');
  writeFileSync(configPath, JSON.stringify(mcpHubConfig(), null, 2));
  const env = { HOME: home, XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'config'), XDG_DATA_HOME: join(home, 'data'), XDG_CACHE_HOME: join(home, 'cache') };
  const started = Date.now();
  const child = spawnTracked(process.execPath, ['--import', join(ROOT, 'bench', 'loopback.mjs'), cli, '--port', String(port), '--config', configPath], { env, log: join(work, 'mcp-hub.log') });
  await waitForOutput(child, /servers started successfully/);
  return { origin: `http://127.0.0.1:${port}`, pid: child.pid, child, configPath, config: mcpHubConfig(), coldStartMs: Date.now() - started };
}

/**
 * An MCP session on the legacy HTTP+SSE transport, which is what mcp-hub 4 serves at /mcp:
 * GET /mcp opens the event stream, whose `endpoint` event names the POST URL
 * (/messages?sessionId=…); each POST is answered 202 and its JSON-RPC response arrives on the stream.
 * Same interface as `session()` in lib.mjs, requests over a keep-alive pool of `connections`.
 */
export async function sseSession(origin, path, connections) {
  const stream = await request(`${origin}${path}`, { headers: { accept: 'text/event-stream' }, bodyTimeout: 0 });
  if (stream.statusCode !== 200) throw new Error(`GET ${path}: ${stream.statusCode}`);
  const pending = new Map();
  let gotEndpoint;
  const endpoint = new Promise((resolve) => { gotEndpoint = resolve; });
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of stream.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
        let event = 'message';
        let data = '';
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(5).replace(/^ /, '');
        }
        if (event === 'endpoint') gotEndpoint(new URL(data, origin));
        else if (event === 'message' && data) {
          const message = JSON.parse(data);
          const waiter = pending.get(message.id);
          if (waiter) {
            pending.delete(message.id);
            waiter(message);
          }
        }
      }
    }
  })();
  reading.catch(() => { /* the stream is destroyed on close */ });
  const post = await endpoint;
  const pool = new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const postPath = post.pathname + post.search;
  let id = 0;
  const send = async (message) => {
    const res = await pool.request({ path: postPath, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(message) });
    const text = await res.body.text();
    if (res.statusCode !== 202) throw new Error(`POST ${postPath}: ${res.statusCode} ${text.slice(0, 200)}`);
  };
  const call = async (method, params) => {
    const requestId = id++;
    const answer = new Promise((resolve) => pending.set(requestId, resolve));
    await send({ jsonrpc: '2.0', id: requestId, method, params });
    const message = await answer;
    if (!message.result) throw new Error(`${method} failed: ${JSON.stringify(message).slice(0, 200)}`);
    return message;
  };
  await call('initialize', { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'bench', version: '1' } });
  await send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return {
    call,
    async close() {
      stream.body.destroy();
      await pool.close();
    },
  };
}

/** The exact name under which the peer exposes the backend's `echo` tool, from one tools/list (waits for the backend). */
export async function peerEchoTool(peerSession, timeoutMs = 30_000) {
  const started = Date.now();
  for (;;) {
    const { result } = await peerSession.call('tools/list', {});
    const names = result.tools.map((t) => t.name);
    const echo = names.find((n) => n === 'echo' || n.endsWith('__echo') || n.endsWith('.echo') || n.endsWith('_echo'));
    if (echo) return { tool: echo, listed: names };
    if (Date.now() - started > timeoutMs) throw new Error(`peer lists no echo tool: ${JSON.stringify(names)}`);
    await sleep(200);
  }
}
