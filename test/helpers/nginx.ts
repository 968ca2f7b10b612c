import { spawn, execFile } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { HeadlessOAuthProvider } from './oauth.js';

/**
 * A real nginx in front of the gateway, configured from the documented example
 * deploy/nginx/gatehouse.conf (ports substituted, nothing else), plus a small stand-in for the auth
 * service nginx asks at /oauth/authorize (what oauth2-proxy answers at /oauth2/auth).
 */

export const EXAMPLE_CONF = fileURLToPath(new URL('../../deploy/nginx/gatehouse.conf', import.meta.url));
const MAIN_TEMPLATE = fileURLToPath(new URL('../fixtures/nginx/nginx.conf.template', import.meta.url));

interface Tap {
  teardown(fn: () => unknown): void;
}

export interface RenderOptions {
  /** Where nginx listens (127.0.0.1). */
  port: number;
  /** Where the gateway listens (127.0.0.1). */
  gatewayPort: number;
  /** Where the auth service listens (127.0.0.1). */
  authPort: number;
}

/**
 * The example with the test's ports. Each substitution must match exactly once, so the example
 * cannot drift away from what the test runs without the test noticing.
 */
export function renderGatehouseConf(options: RenderOptions, example = readFileSync(EXAMPLE_CONF, 'utf8')): string {
  const substitutions: Array<[string, string]> = [
    ['    server 127.0.0.1:8080;\n', `    server 127.0.0.1:${options.gatewayPort};\n`],
    ['    server 127.0.0.1:4180;\n', `    server 127.0.0.1:${options.authPort};\n`],
    ['    listen 80;\n', `    listen 127.0.0.1:${options.port};\n`],
  ];
  let text = example;
  for (const [from, to] of substitutions) {
    const count = text.split(from).length - 1;
    if (count !== 1) throw new Error(`deploy/nginx/gatehouse.conf: expected exactly one ${JSON.stringify(from.trim())}, found ${count}`);
    text = text.replace(from, to);
  }
  return text;
}

/** Writes nginx.conf (main) and gatehouse.conf (rendered example) into `prefix`; returns the main path. */
export function writeNginxConfig(prefix: string, options: RenderOptions): string {
  for (const dir of ['tmp/client_body', 'tmp/proxy', 'tmp/fastcgi', 'tmp/uwsgi', 'tmp/scgi', 'logs']) mkdirSync(join(prefix, dir), { recursive: true });
  writeFileSync(join(prefix, 'gatehouse.conf'), renderGatehouseConf(options));
  const main = readFileSync(MAIN_TEMPLATE, 'utf8').replaceAll('@PREFIX@', prefix);
  const path = join(prefix, 'nginx.conf');
  writeFileSync(path, main);
  return path;
}

function nginxArgs(prefix: string, conf: string): string[] {
  // -e: the error log before the configuration is read (the default is under /var/log).
  return ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')];
}

/** `nginx -t` on the configuration; resolves with its output, rejects with it when invalid. */
export async function nginxConfigTest(binary: string, prefix: string, conf: string): Promise<string> {
  try {
    const { stdout, stderr } = await promisify(execFile)(binary, [...nginxArgs(prefix, conf), '-t'], { timeout: 10_000 });
    return stdout + stderr;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`nginx -t failed: ${e.stderr ?? ''}${e.stdout ?? ''}${e.message}`);
  }
}

export interface RunningNginx {
  url: string;
  port: number;
  prefix: string;
  conf: string;
  errorLog(): string;
  accessLog(): string;
}

/** Starts nginx in the foreground with its own prefix; stopped (and waited for) at teardown. */
export async function startNginx(t: Tap, binary: string, prefix: string, options: RenderOptions): Promise<RunningNginx> {
  const conf = writeNginxConfig(prefix, options);
  await nginxConfigTest(binary, prefix, conf);
  const child = spawn(binary, nginxArgs(prefix, conf), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  t.teardown(async () => {
    if (gone) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  });
  const readLog = (name: string) => {
    try {
      return readFileSync(join(prefix, name), 'utf8');
    } catch {
      return '';
    }
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (gone) throw new Error(`nginx exited before listening: ${output}\n${readLog('error.log')}`);
    if (await canConnect(options.port)) break;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${options.port}: ${output}\n${readLog('error.log')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `http://127.0.0.1:${options.port}`, port: options.port, prefix, conf, errorLog: () => readLog('error.log'), accessLog: () => readLog('access.log') };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface AuthUser {
  password: string;
  groups: string[];
}

export interface AuthService {
  port: number;
  /** Every request the auth service saw (path and headers). */
  seen: Array<{ path: string; headers: IncomingHttpHeaders }>;
}

/**
 * A stand-in for oauth2-proxy's auth endpoint: `GET /oauth2/auth` answers 202 with
 * `X-Auth-Request-User` / `X-Auth-Request-Groups` for valid HTTP Basic credentials (the "session" of
 * this test's browser) and 401 otherwise; `/oauth2/sign_in` is a sign-in page.
 */
export async function startAuthService(t: Tap, users: Record<string, AuthUser>): Promise<AuthService> {
  const seen: AuthService['seen'] = [];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://auth').pathname;
    seen.push({ path, headers: req.headers });
    if (path === '/oauth2/auth') {
      const user = basicUser(req, users);
      if (!user) {
        res.writeHead(401, { 'content-type': 'text/plain' }).end('unauthorized');
        return;
      }
      res.writeHead(202, { 'x-auth-request-user': user, 'x-auth-request-groups': users[user]!.groups.join(',') }).end();
      return;
    }
    if (path === '/oauth2/sign_in') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Sign in</title><h1>Sign in with your company account</h1>');
      return;
    }
    res.writeHead(404).end();
  });
  const port = await listen(server);
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port, seen };
}

function basicUser(req: IncomingMessage, users: Record<string, AuthUser>): string | undefined {
  const header = req.headers.authorization ?? '';
  const match = /^Basic\s+(\S+)$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const name = decoded.slice(0, colon);
  return colon > 0 && Object.hasOwn(users, name) && users[name]!.password === decoded.slice(colon + 1) ? name : undefined;
}

/** Listens on 127.0.0.1 (port 0 unless given); resolves with the port. */
export function listen(server: Server, port = 0, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as { port: number }).port));
  });
}

export interface ProxiedBrowser {
  /** HTTP Basic credentials the auth service accepts (the browser's sign-in). */
  username?: string;
  password?: string;
  /** Headers the "browser" adds itself, e.g. a forged X-Forwarded-User. */
  extraHeaders?: Record<string, string>;
  decision?: 'allow' | 'deny';
}

export interface BrowseResult {
  status: number;
  location?: string;
  body: string;
  /** The consent page, when one was shown. */
  consentPage?: string;
}

/**
 * The user's browser talking to nginx: it never sets identity headers itself (unless told to forge
 * them), it signs in to the auth service with HTTP Basic, and answers the consent form.
 */
export async function browseViaProxy(authorizationUrl: URL | string, browser: ProxiedBrowser): Promise<BrowseResult> {
  const headers: Record<string, string> = { ...browser.extraHeaders };
  if (browser.username !== undefined) headers.authorization = `Basic ${Buffer.from(`${browser.username}:${browser.password ?? ''}`).toString('base64')}`;
  const first = await request(authorizationUrl, { method: 'GET', headers });
  const body = await first.body.text();
  if (first.statusCode !== 200 || !body.includes('<form')) {
    return { status: first.statusCode, location: first.headers.location as string | undefined, body };
  }
  const fields = new URLSearchParams();
  for (const match of body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields.append(unescapeHtml(match[1]!), unescapeHtml(match[2]!));
  fields.append('decision', browser.decision ?? 'allow');
  const second = await request(new URL('/oauth/authorize', authorizationUrl), {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
    body: fields.toString(),
  });
  return { status: second.statusCode, location: second.headers.location as string | undefined, body: await second.body.text(), consentPage: body };
}

export function unescapeHtml(value: string): string {
  return value.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** The SDK's OAuthClientProvider whose browser goes through nginx (see `browseViaProxy`). */
export class ProxiedOAuthProvider extends HeadlessOAuthProvider {
  lastBrowse?: BrowseResult;

  constructor(readonly browser: ProxiedBrowser, redirect?: string, metadata?: ConstructorParameters<typeof HeadlessOAuthProvider>[2]) {
    super({ user: browser.username ?? '' }, redirect, metadata);
  }

  override async redirectToAuthorization(url: URL): Promise<void> {
    this.lastAuthorizationUrl = url;
    this.lastBrowse = await browseViaProxy(url, this.browser);
    this.lastRedirect = this.lastBrowse;
    const location = this.lastBrowse.location ? new URL(this.lastBrowse.location) : undefined;
    this.authorizationCode = location?.searchParams.get('code') ?? undefined;
  }
}

/**
 * A request sent from a chosen local address (e.g. 127.0.0.2, to be an untrusted peer). The address
 * goes at the Agent's top level: undici overwrites `connect: { localAddress }` with the client-level
 * option.
 */
export async function requestFrom(localAddress: string, url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const dispatcher = new Agent({ localAddress });
  try {
    const res = await request(url, { headers, dispatcher });
    return { status: res.statusCode, body: await res.body.text() };
  } finally {
    await dispatcher.close();
  }
}
