/**
 * Runs the official MCP conformance `authorization` command (@modelcontextprotocol/conformance, pinned
 * 0.2.0-alpha.12) against the gateway's own OAuth 2.1 Authorization Server: both of its scenarios,
 * `authorization-server-metadata-endpoint` and `authorization-code-grant`.
 *
 * The code-grant scenario is interactive: the CLI prints an authorize URL and waits for a browser to come
 * back to its loopback callback `http://127.0.0.1:<port>/callback`. The test plays the browser behind the
 * trusted sign-in proxy: it reads the CLI's stdout as it runs, opens the URL from 127.0.0.1 (a trusted peer
 * by default) with `X-Forwarded-User`, answers the consent page (`browse()`), and follows the gateway's 302
 * to the CLI's callback with a GET. The CLI then redeems the code at /oauth/token itself.
 *
 * The CLI neither registers a client (no DCR, no CIMD) nor has a redirect URI option: `--client-id` must
 * name a client the AS already knows with `http://127.0.0.1:<--port>/callback` registered. The gateway
 * pre-registers it (`serverAuth.oauthAs.clients`, public client, `none`).
 *
 * The `authorization` command has no `--expected-failures`: it exits 1 on any FAILURE (WARNINGs do not
 * count), so the test also reads every checks.json and requires each check to be SUCCESS.
 * On Node 20 the CLI is loaded with node20-register.mjs (see README.md beside this file).
 */
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { request } from 'undici';
import { startGateway, fixtureStdio, ROOT } from '../helpers/gateway.js';
import { freePort, browse } from '../helpers/oauth.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const CLI = path.join(ROOT, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const NODE20_REGISTER = pathToFileURL(path.join(HERE, 'node20-register.mjs')).href;
const SPEC_VERSION = '2025-11-25';
const CLIENT_ID = 'conformance-cli';
const USER = 'conformance@example.com';
/** The whole CLI run; the code grant itself waits up to 5 minutes for the browser, we do not. */
const CLI_TIMEOUT_MS = 45_000;
const BROWSER_TIMEOUT_MS = 10_000;
const SCENARIOS = ['authorization-server-metadata-endpoint', 'authorization-code-grant'];

interface Check {
  id: string;
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | 'SKIPPED';
  errorMessage?: string;
  details?: Record<string, unknown>;
}

interface Browser {
  authorizeUrl?: URL;
  /** The first GET showed the consent form (consent: 'always'). */
  consentPageShown?: boolean;
  consentStatus?: number;
  redirect?: URL;
  callbackStatus?: number;
  error?: string;
}

/**
 * Runs the CLI and plays the browser when it prints the authorize URL. Resolves with the exit code,
 * combined output and what the browser did (never rejects).
 */
function runConformance(args: string[], authorizeEndpoint: string, callbackOrigin: string): Promise<{ code: number | null; signal: string | null; output: string; browser: Browser }> {
  const nodeArgs = 'globSync' in fs ? [CLI, ...args] : ['--import', NODE20_REGISTER, CLI, ...args];
  const child = spawn(process.execPath, nodeArgs, {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '');
  const browser: Browser = {};
  let output = '';
  let pending = '';
  let callbackListening = false;
  let onCallbackListening: (() => void) | undefined;
  let browsing: Promise<void> = Promise.resolve();

  // The CLI prints the URL before its callback server is listening; the browser waits for that line.
  const callbackReady = new Promise<void>((resolve) => (onCallbackListening = resolve));
  const playBrowser = async (url: URL) => {
    try {
      browser.authorizeUrl = url;
      // What the user sees first: the consent page (a GET issues no code, so browse() may GET again).
      const page = await request(url, { method: 'GET', headers: { 'x-forwarded-user': USER }, headersTimeout: BROWSER_TIMEOUT_MS, bodyTimeout: BROWSER_TIMEOUT_MS });
      browser.consentPageShown = page.statusCode === 200 && (await page.body.text()).includes('<form');
      let timer: NodeJS.Timeout | undefined;
      const answer = await Promise.race([
        browse(url, { user: USER }),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`consent not answered within ${BROWSER_TIMEOUT_MS} ms`)), BROWSER_TIMEOUT_MS))),
      ]).finally(() => clearTimeout(timer));
      browser.consentStatus = answer.status;
      if (answer.status !== 302 || !answer.location) throw new Error(`authorize answered ${answer.status} without a redirect: ${answer.body.slice(0, 300)}`);
      browser.redirect = new URL(answer.location);
      if (browser.redirect.origin !== callbackOrigin) throw new Error(`redirect to ${browser.redirect.origin}, not to the CLI's callback ${callbackOrigin}`);
      await callbackReady;
      const callback = await request(browser.redirect, { method: 'GET', headersTimeout: BROWSER_TIMEOUT_MS, bodyTimeout: BROWSER_TIMEOUT_MS });
      await callback.body.text();
      browser.callbackStatus = callback.statusCode;
    } catch (error) {
      browser.error = (error as Error).message;
      output += `\n[test] browser: ${browser.error}\n`;
      child.kill('SIGKILL'); // the CLI would wait 5 minutes for a callback that will not come
    }
  };
  const onLine = (line: string) => {
    const text = plain(line).trim();
    if (text.startsWith('Callback server started:')) {
      callbackListening = true;
      onCallbackListening?.();
    } else if (text.startsWith(`${authorizeEndpoint}?`) && !browser.authorizeUrl) {
      browsing = playBrowser(new URL(text));
    }
  };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    lines.forEach(onLine);
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const timer = setTimeout(() => {
    output += `\n[test] conformance CLI still running after ${CLI_TIMEOUT_MS} ms (callback listening: ${callbackListening}): killed\n`;
    child.kill('SIGKILL');
  }, CLI_TIMEOUT_MS);
  return new Promise((resolve) => {
    child.on('error', (err) => {
      output += `\n[test] spawn failed: ${err.message}\n`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      onCallbackListening?.();
      // The browser's requests are bounded by BROWSER_TIMEOUT_MS; let it finish before reporting.
      void browsing.then(() => resolve({ code, signal, output: plain(output), browser }));
    });
  });
}

/** Reads `<outDir>/authorization-server-<scenario>-<timestamp>/checks.json` for every scenario that ran. */
function readResults(outDir: string): Map<string, Check[]> {
  const results = new Map<string, Check[]>();
  for (const entry of fs.readdirSync(outDir)) {
    const match = /^authorization-server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(entry);
    const file = path.join(outDir, entry, 'checks.json');
    if (match && fs.existsSync(file)) results.set(match[1]!, JSON.parse(fs.readFileSync(file, 'utf8')) as Check[]);
  }
  return results;
}

t.test('official MCP conformance authorization scenarios against the gateway\'s Authorization Server', async (t) => {
  const port = await freePort();
  let callbackPort = await freePort();
  while (callbackPort === port) callbackPort = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const callbackOrigin = `http://127.0.0.1:${callbackPort}`;
  const dir = t.testdir();
  await startGateway(t, {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: {
      providers: ['oauth_as'],
      oauthAs: {
        issuerUrl: issuer,
        jwtSecret: 'conformance-secret-0123456789-0123456789-abcdef',
        consent: 'always', // the browser leg answers the real consent form
        // The CLI's redirect URI; the default redirectUriAllowlist (http://127.0.0.1/*, any port) allows it.
        clients: [{ client_id: CLIENT_ID, client_name: 'MCP conformance CLI', redirect_uris: [`${callbackOrigin}/callback`], token_endpoint_auth_method: 'none' }],
      },
    },
    stateStore: { type: 'file', path: path.join(dir, 'auth_server.json') },
  }, {}, { port });
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-conformance-authz-'));
  t.teardown(() => fs.rmSync(outDir, { recursive: true, force: true }));

  const run = await runConformance([
    'authorization',
    '--url', issuer,
    '--client-id', CLIENT_ID,
    '--resource', `${issuer}/mcp`,
    '--port', String(callbackPort),
    '--spec-version', SPEC_VERSION,
    '--output-dir', outDir,
  ], `${issuer}/oauth/authorize`, callbackOrigin);
  const lines = run.output.split('\n');
  const summary = lines.findIndex((l) => l.includes('=== SUMMARY ==='));
  const verdict = lines.slice(summary >= 0 ? summary + 1 : -20).filter((l) => l.trim()).join(' | ');
  const diagnostic = { cliExit: run.code ?? run.signal, browser: { ...run.browser, authorizeUrl: run.browser.authorizeUrl?.href, redirect: run.browser.redirect?.href }, cliOutput: run.output };

  t.equal(run.code, 0, `the CLI exits 0${run.code === 0 ? '' : `; CLI says: ${verdict}`}`, diagnostic);
  t.match(run.output, /Total: \d+ passed, 0 failed/, 'the CLI summary has no failure', { diagnostic: false });

  await t.test('the browser leg', async (t) => {
    const { authorizeUrl, redirect } = run.browser;
    t.equal(run.browser.error, undefined, 'no browser error');
    t.ok(authorizeUrl, 'the CLI printed an authorize URL');
    t.equal(authorizeUrl?.searchParams.get('client_id'), CLIENT_ID, 'client_id is the pre-registered client');
    t.equal(authorizeUrl?.searchParams.get('redirect_uri'), `${callbackOrigin}/callback`, 'redirect_uri is the CLI callback');
    t.equal(authorizeUrl?.searchParams.get('code_challenge_method'), 'S256', 'PKCE S256');
    t.equal(authorizeUrl?.searchParams.get('resource'), `${issuer}/mcp`, 'resource (RFC 8707)');
    t.equal(run.browser.consentPageShown, true, 'the gateway showed its consent page');
    t.equal(run.browser.consentStatus, 302, 'the consent form was answered with a redirect');
    t.equal(redirect?.origin + (redirect?.pathname ?? ''), `${callbackOrigin}/callback`, 'redirected to the CLI callback');
    t.ok(redirect?.searchParams.get('code'), 'with a code');
    t.equal(redirect?.searchParams.get('state'), authorizeUrl?.searchParams.get('state'), 'with the state');
    t.equal(redirect?.searchParams.get('iss'), issuer, 'with iss (RFC 9207)');
    t.equal(run.browser.callbackStatus, 200, 'the CLI callback accepted the redirect');
  });

  const results = readResults(outDir);
  t.same([...results.keys()].sort(), [...SCENARIOS].sort(), 'both scenarios wrote their checks.json', diagnostic);
  for (const scenario of SCENARIOS) {
    const checks = results.get(scenario) ?? [];
    t.ok(checks.length > 0, `${scenario}: has checks`);
    t.same(
      checks.filter((c) => c.status !== 'SUCCESS').map((c) => `${c.id}: ${c.status} ${c.errorMessage ?? ''}`),
      [],
      `${scenario}: every check is SUCCESS (no FAILURE, WARNING or SKIPPED)`,
    );
  }
  const ids = (scenario: string) => (results.get(scenario) ?? []).map((c) => c.id).sort();
  t.same(ids('authorization-server-metadata-endpoint'), ['authorization-server-metadata', 'authorization-server-metadata-cimd'], 'metadata: the document and CIMD checks ran');
  t.same(ids('authorization-code-grant'), ['authorization-code-grant'], 'code grant: the grant check ran');
  const grant = results.get('authorization-code-grant')?.[0]?.details as { body?: Record<string, unknown> } | undefined;
  t.equal(grant?.body?.token_type, 'Bearer', 'the CLI got a Bearer token');
  t.match(grant?.body?.refresh_token, /len=/, 'and a refresh token');
});
