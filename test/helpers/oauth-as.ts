/**
 * Helpers for the Authorization Server's adversarial, registration, CIMD, crash and revocation
 * tests: a gateway with `oauthAs` started in-process (with the CIMD TLS trust `startGateway` cannot
 * pass), raw protocol steps (register, authorize through the headless browser, token, refresh,
 * revoke) and a probe of /mcp that answers only with the status and the challenge.
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { Gateway } from '../../src/app.js';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger, silentLogger } from '../../src/log.js';
import type { CimdOptions } from '../../src/oauth/cimd.js';
import { fixtureStdio, ROOT } from './gateway.js';
import { browse as browseLoopback, freePort, type BrowserIdentity } from './oauth.js';

export const JWT_SECRET = 'adversarial-secret-0123456789-0123456789-abcdef';
export const REDIRECT = 'http://127.0.0.1:43210/callback';
export const USER: BrowserIdentity = { user: 'ada@example.com', groups: ['engineering'] };

interface Tap {
  teardown(fn: () => unknown): void;
  testdir(): string;
}

export interface AsGatewayOptions {
  /** Merged into `serverAuth.oauthAs`. */
  oauthAs?: Record<string, unknown>;
  /** `http` block. */
  http?: Record<string, unknown>;
  /** Replaces the default file store (`<testdir>/auth_server.json`); `null` leaves `stateStore` out. */
  stateStore?: Record<string, unknown> | null;
  env?: NodeJS.ProcessEnv;
  cimd?: CimdOptions;
  port?: number;
  dir?: string;
  /** Extra providers before `oauth_as` (e.g. `forwarded`), with their blocks. */
  serverAuth?: Record<string, unknown>;
  providers?: string[];
}

export interface AsGateway {
  gateway: Gateway;
  issuer: string;
  mcpUrl: string;
  dir: string;
  port: number;
  statePath: string;
  /** Closes this gateway (idempotent; also done at teardown). */
  stop(): Promise<void>;
}

/** A gateway with the Authorization Server, a fixture backend and a file store in a test dir. */
export async function startAsGateway(t: Tap, options: AsGatewayOptions = {}): Promise<AsGateway> {
  const port = options.port ?? (await freePort());
  const dir = options.dir ?? t.testdir();
  const issuer = `http://127.0.0.1:${port}`;
  const statePath = join(dir, 'auth_server.json');
  const doc: Record<string, unknown> = {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: {
      providers: options.providers ?? ['oauth_as'],
      ...options.serverAuth,
      oauthAs: { issuerUrl: issuer, jwtSecret: JWT_SECRET, trustedSourceCidrs: ['127.0.0.1/32'], ...options.oauthAs },
    },
    acl: { default: 'allow', rules: [] },
  };
  if (options.stateStore !== null) doc.stateStore = options.stateStore ?? { type: 'file', path: statePath };
  if (options.http) doc.http = options.http;
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...options.env };
  const { config } = parseConfigText(JSON.stringify(doc), 'test servers.json', dir ?? ROOT, env);
  const logger = process.env.GATEHOUSE_TEST_LOG ? createLogger({ level: process.env.GATEHOUSE_TEST_LOG as never }) : silentLogger;
  const gateway = await Gateway.start({ config, host: '127.0.0.1', port, logger, env, cimd: options.cimd });
  const stop = () => gateway.close();
  t.teardown(stop);
  await gateway.ready();
  return { gateway, issuer, mcpUrl: `${issuer}/mcp`, dir, port, statePath, stop };
}

/**
 * `browse` from helpers/oauth.ts plus extra request headers (spoofing tests). `localAddress` goes at
 * the Agent's top level: undici overwrites `connect: { localAddress }` with the client-level option.
 */
export async function browse(authorizationUrl: URL | string, identity: BrowserIdentity, extraHeaders: Record<string, string> = {}): Promise<{ status: number; location?: string; body: string }> {
  if (!identity.localAddress && Object.keys(extraHeaders).length === 0) return browseLoopback(authorizationUrl, identity);
  const dispatcher = new Agent(identity.localAddress ? { localAddress: identity.localAddress } : {});
  const headers: Record<string, string> = { 'x-forwarded-user': identity.user, ...extraHeaders };
  if (identity.groups) headers['x-forwarded-groups'] = identity.groups.join(',');
  try {
    const first = await request(authorizationUrl, { method: 'GET', headers, dispatcher });
    const body = await first.body.text();
    if (first.statusCode !== 200 || !body.includes('<form')) return { status: first.statusCode, location: first.headers.location as string | undefined, body };
    const fields = new URLSearchParams();
    for (const match of body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields.append(unescapeHtml(match[1]!), unescapeHtml(match[2]!));
    fields.append('decision', identity.decision ?? 'allow');
    const second = await request(new URL('/oauth/authorize', authorizationUrl), {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
      body: fields.toString(),
      dispatcher,
    });
    return { status: second.statusCode, location: second.headers.location as string | undefined, body: await second.body.text() };
  } finally {
    await dispatcher.close();
  }
}

function unescapeHtml(value: string): string {
  return value.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** The source address a request from `localAddress` arrives with (to prove the test really moved it). */
export function agentFrom(localAddress: string): Agent {
  return new Agent({ localAddress });
}

export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: Record<string, unknown>;
}

async function answer(res: Awaited<ReturnType<typeof request>>): Promise<HttpAnswer> {
  const text = await res.body.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: the caller looks at text
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

/** POSTs a form; `headers` may override content-type or add Authorization. */
export async function postForm(url: string, fields: Record<string, string> | string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const body = typeof fields === 'string' ? fields : new URLSearchParams(fields).toString();
  return answer(await request(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body }));
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return answer(await request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) }));
}

export async function register(issuer: string, metadata: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return postJson(`${issuer}/oauth/register`, {
    client_name: 'Adversarial test client',
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    ...metadata,
  }, headers);
}

/** Registers and returns the client_id (fails the test loudly otherwise). */
export async function registerClient(issuer: string, metadata: Record<string, unknown> = {}): Promise<string> {
  const res = await register(issuer, metadata);
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${res.text}`);
  return res.json.client_id as string;
}

export function authorizeUrl(issuer: string, params: Record<string, string | undefined>): string {
  const url = new URL(`${issuer}/oauth/authorize`);
  for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(key, value);
  return url.toString();
}

export interface Authorized {
  status: number;
  location?: URL;
  body: string;
  code?: string;
  verifier: string;
}

/** Runs the authorization request in the headless browser (consent answered), returns the redirect. */
export async function authorize(issuer: string, clientId: string, options: {
  redirectUri?: string;
  identity?: BrowserIdentity;
  params?: Record<string, string | undefined>;
} = {}): Promise<Authorized> {
  const { verifier, challenge } = pkce();
  const url = authorizeUrl(issuer, {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: options.redirectUri ?? REDIRECT,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: 'st-123',
    resource: `${issuer}/mcp`,
    ...options.params,
  });
  const result = await browse(url, options.identity ?? USER);
  const location = result.location ? new URL(result.location) : undefined;
  return { status: result.status, location, body: result.body, code: location?.searchParams.get('code') ?? undefined, verifier };
}

export async function exchange(issuer: string, clientId: string, code: string, verifier: string, extra: Record<string, string> = {}, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return postForm(`${issuer}/oauth/token`, {
    grant_type: 'authorization_code',
    code,
    code_verifier: verifier,
    redirect_uri: REDIRECT,
    client_id: clientId,
    ...extra,
  }, headers);
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
}

/** Register (unless a client id is given) → authorize → token; throws unless every step succeeds. */
export async function obtainTokens(issuer: string, clientId?: string, identity?: BrowserIdentity): Promise<{ clientId: string; tokens: Tokens }> {
  const id = clientId ?? (await registerClient(issuer));
  const auth = await authorize(issuer, id, { identity });
  if (!auth.code) throw new Error(`no code: ${auth.status} ${auth.location ?? auth.body.slice(0, 300)}`);
  const res = await exchange(issuer, id, auth.code, auth.verifier);
  if (res.status !== 200) throw new Error(`token exchange failed: ${res.status} ${res.text}`);
  return { clientId: id, tokens: res.json as unknown as Tokens };
}

export async function refresh(issuer: string, clientId: string, refreshToken: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return postForm(`${issuer}/oauth/token`, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId }, headers);
}

export async function revoke(issuer: string, clientId: string, token: string, hint?: string): Promise<HttpAnswer> {
  return postForm(`${issuer}/oauth/revoke`, { token, client_id: clientId, ...(hint ? { token_type_hint: hint } : {}) });
}

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '1' } },
});

/** An `initialize` POST to /mcp with the given headers: the status and the challenge, body discarded. */
export async function probeMcp(mcpUrl: string, headers: Record<string, string>): Promise<{ status: number; challenge?: string }> {
  const res = await request(mcpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: INITIALIZE,
  });
  // A 200 may be an SSE stream: read a little and drop the rest.
  await res.body.dump().catch(() => {});
  return { status: res.statusCode, challenge: res.headers['www-authenticate'] as string | undefined };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** Polls /mcp until the token is refused (revocation checks are cached ~2 s); returns the last answer. */
export async function waitUntilRefused(mcpUrl: string, token: string, timeoutMs = 6000): Promise<{ status: number; challenge?: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = await probeMcp(mcpUrl, bearer(token));
    if (probe.status === 401 || Date.now() > deadline) return probe;
    await new Promise((r) => setTimeout(r, 200));
  }
}
