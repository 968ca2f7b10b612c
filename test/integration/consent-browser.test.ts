import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import type { BrowserContext, Page, Response } from 'playwright-core';
import { startGateway, fixtureStdio } from '../helpers/gateway.js';
import { freePort } from '../helpers/oauth.js';
import { requireSystemBinary, CHROMIUM } from '../helpers/system.js';
import { launchChromium, startLoopbackSite, autoSubmitPage } from '../helpers/browser.js';
import { unescapeHtml } from '../helpers/nginx.js';

/**
 * The consent page in real headless Chromium. The browser stands where the trusted proxy's user
 * would: it connects from 127.0.0.1 (the gateway's trustedSourceCidrs) and carries the identity
 * header the proxy would add (Playwright's extra HTTP headers). The OAuth client's redirect URI is
 * a small loopback site that records what arrives; "other sites" are served from 127.0.0.2.
 */

const chromiumPath = requireSystemBinary(t, CHROMIUM);

const USER = 'ada@example.com';
const CLIENT_NAME = 'Acme Notes';

function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

if (chromiumPath) {
  t.test('the consent page in Chromium', async (t) => {
    const dir = t.testdir();
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    await startGateway(t, {
      mcpServers: { fx: fixtureStdio() },
      serverAuth: {
        providers: ['oauth_as'],
        oauthAs: { issuerUrl: issuer, jwtSecret: 'consent-browser-secret-0123456789-0123456789', consent: 'always', trustedSourceCidrs: ['127.0.0.1/32'] },
      },
      acl: { default: 'deny', rules: [] },
      stateStore: { type: 'memory' },
    }, {}, { port, waitForBackends: false });

    const callback = await startLoopbackSite(t);
    const redirectUri = `${callback.url}/callback`;
    const registered = await request(`${issuer}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: CLIENT_NAME, redirect_uris: [redirectUri], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }),
    });
    const client = (await registered.body.json()) as { client_id: string };
    t.equal(registered.statusCode, 201, 'registered');

    const authorizeParams = (state: string, challenge: string): Record<string, string> => ({
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: redirectUri,
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      scope: 'mcp',
      resource: `${issuer}/mcp`,
    });
    const authorizeUrl = (state: string, challenge: string) => `${issuer}/oauth/authorize?${new URLSearchParams(authorizeParams(state, challenge))}`;

    const browser = await launchChromium(t, chromiumPath);
    const newPage = async (): Promise<{ context: BrowserContext; page: Page }> => {
      const context = await browser.newContext({ extraHTTPHeaders: { 'x-forwarded-user': USER, 'x-forwarded-groups': 'engineering' } });
      context.setDefaultTimeout(10_000);
      const page = await context.newPage();
      return { context, page };
    };
    const callbackHits = (state: string) => callback.hits.filter((u) => u.searchParams.get('state') === state);

    await t.test('renders the client, its redirect host, the user and the scopes', async (t) => {
      const { context, page } = await newPage();
      t.teardown(() => context.close());
      const console: string[] = [];
      page.on('console', (m) => console.push(m.text()));
      const response = await page.goto(authorizeUrl('render', pkce().challenge));
      t.equal(response?.status(), 200);
      t.equal(await page.title(), 'Authorize access');
      t.equal(await page.locator('h1').innerText(), `Allow ${CLIENT_NAME} to use your MCP tools?`);
      const text = await page.locator('main').innerText();
      t.match(text, `Signed in as ${USER}`, 'the user');
      t.match(text, `you will be sent to 127.0.0.1:${callback.port}`, 'the redirect host');
      t.match(text, /It asks for: mcp/, 'the scopes');
      t.match(text, client.client_id, 'the client id');
      t.ok(await page.getByRole('button', { name: 'Allow' }).isVisible(), 'Allow button');
      t.ok(await page.getByRole('button', { name: 'Cancel' }).isVisible(), 'Cancel button');
      // The inline style block is allowed by its CSP hash: it applies, and nothing was blocked.
      t.equal(await page.evaluate('getComputedStyle(document.querySelector("button.allow")).backgroundColor'), 'rgb(31, 111, 235)', 'the page is styled');
      t.same(console.filter((m) => /Content Security Policy/i.test(m)), [], 'no CSP violations');
      const screenshot = join(dir, 'consent.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      t.ok(statSync(screenshot).size > 5000, 'screenshot taken');
      if (process.env.GATEHOUSE_SCREENSHOT_DIR) {
        mkdirSync(process.env.GATEHOUSE_SCREENSHOT_DIR, { recursive: true });
        copyFileSync(screenshot, join(process.env.GATEHOUSE_SCREENSHOT_DIR, 'consent.png'));
      }
    });

    await t.test('Allow lands on the redirect URI with code, state and iss, and the code exchanges', async (t) => {
      const { context, page } = await newPage();
      t.teardown(() => context.close());
      const { verifier, challenge } = pkce();
      await page.goto(authorizeUrl('allow-state', challenge));
      await Promise.all([page.waitForURL(`${redirectUri}?**`), page.getByRole('button', { name: 'Allow' }).click()]);
      const hits = callbackHits('allow-state');
      t.equal(hits.length, 1, 'one redirect');
      const landed = hits[0]!;
      t.equal(landed.pathname, '/callback');
      t.equal(landed.searchParams.get('iss'), issuer);
      const code = landed.searchParams.get('code');
      t.ok(code, 'a code');
      t.equal(new URL(page.url()).searchParams.get('code'), code, 'the browser is on the callback');

      const token = await request(`${issuer}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: code!, redirect_uri: redirectUri, client_id: client.client_id, code_verifier: verifier, resource: `${issuer}/mcp` }).toString(),
      });
      const body = (await token.body.json()) as Record<string, unknown>;
      t.equal(token.statusCode, 200, `code exchanged${token.statusCode === 200 ? '' : `: ${JSON.stringify(body)}`}`);
      t.equal(body.token_type, 'Bearer');
      t.ok(body.access_token && body.refresh_token);
    });

    await t.test('Cancel lands on the redirect URI with access_denied and state', async (t) => {
      const { context, page } = await newPage();
      t.teardown(() => context.close());
      await page.goto(authorizeUrl('cancel-state', pkce().challenge));
      await Promise.all([page.waitForURL(`${redirectUri}?**`), page.getByRole('button', { name: 'Cancel' }).click()]);
      const hits = callbackHits('cancel-state');
      t.equal(hits.length, 1);
      t.equal(hits[0]!.searchParams.get('error'), 'access_denied');
      t.equal(hits[0]!.searchParams.get('iss'), issuer);
      t.notOk(hits[0]!.searchParams.get('code'), 'no code');
    });

    await t.test('a cross-site POST without the right CSRF token is refused', async (t) => {
      const { challenge } = pkce();
      const fields = (state: string) => ({ ...authorizeParams(state, challenge), decision: 'allow' });
      // A token the gateway really issued, but to another user (same request parameters).
      const csrfFor = async (user: string, state: string) => {
        const page = await request(authorizeUrl(state, challenge), { headers: { 'x-forwarded-user': user } });
        const html = await page.body.text();
        return unescapeHtml(/name="csrf_token" value="([^"]+)"/.exec(html)![1]!);
      };
      const attacker = await startLoopbackSite(t, '127.0.0.2', {
        '/no-token': autoSubmitPage(`${issuer}/oauth/authorize`, fields('csrf-none')),
        '/garbage-token': autoSubmitPage(`${issuer}/oauth/authorize`, { ...fields('csrf-garbage'), csrf_token: `${Date.now() + 60_000}.${'A'.repeat(43)}` }),
        '/other-user-token': autoSubmitPage(`${issuer}/oauth/authorize`, { ...fields('csrf-mallory'), csrf_token: await csrfFor('mallory@example.com', 'csrf-mallory') }),
        // Control: the very same cross-site form with the user's own valid token goes through, so
        // the refusals above are the CSRF check and not something else (Origin, method...).
        '/valid-token': autoSubmitPage(`${issuer}/oauth/authorize`, { ...fields('csrf-control'), csrf_token: await csrfFor(USER, 'csrf-control') }),
      });
      for (const [path, state] of [['/no-token', 'csrf-none'], ['/garbage-token', 'csrf-garbage'], ['/other-user-token', 'csrf-mallory']] as const) {
        const { context, page } = await newPage();
        const answer = page.waitForResponse((r: Response) => r.url() === `${issuer}/oauth/authorize` && r.request().method() === 'POST');
        await page.goto(attacker.url + path);
        const response = await answer;
        t.equal(response.status(), 403, `${path}: 403`);
        await page.waitForLoadState();
        t.equal(await page.title(), 'This form has expired', `${path}: the gateway's CSRF refusal`);
        t.equal(new URL(page.url()).origin, issuer, `${path}: the browser stays on the gateway`);
        t.equal(callbackHits(state).length, 0, `${path}: nothing reached the redirect URI`);
        await context.close();
      }
      const { context, page } = await newPage();
      t.teardown(() => context.close());
      await Promise.all([page.waitForURL(`${redirectUri}?**`), page.goto(attacker.url + '/valid-token')]);
      t.equal(callbackHits('csrf-control').length, 1, 'control: with the valid token the same cross-site form is accepted');
    });

    await t.test('the page refuses to be framed', async (t) => {
      const target = authorizeUrl('framed', pkce().challenge);
      const framer = await startLoopbackSite(t, '127.0.0.2', {
        '/frame': `<!doctype html><title>Framer</title><h1>framer</h1><iframe id="victim" src="${target.replace(/&/g, '&amp;')}" width="600" height="400"></iframe>`,
      });
      const { context, page } = await newPage();
      t.teardown(() => context.close());
      const console: string[] = [];
      page.on('console', (m) => console.push(m.text()));
      const framed = page.waitForResponse((r: Response) => r.url() === target);
      await page.goto(`${framer.url}/frame`);
      const response = await framed;
      t.equal(response.status(), 200, 'the gateway answered the framed request');
      const headers = response.headers();
      t.match(headers['content-security-policy'], /frame-ancestors 'none'/);
      t.equal(headers['x-frame-options'], 'DENY');
      await page.waitForLoadState('load');
      const child = page.frames().find((f) => f !== page.mainFrame());
      t.ok(child, 'the iframe exists');
      let framedText = '';
      try {
        framedText = String(await child!.evaluate('document.body ? document.body.innerText : ""'));
      } catch {
        framedText = '';
      }
      t.notMatch(framedText, /Signed in as|Allow/, 'no consent content inside the frame');
      t.notMatch(child!.url(), /oauth\/authorize/, `the frame did not load the consent page (${child!.url()})`);
      t.equal(await page.frameLocator('#victim').getByRole('button', { name: 'Allow' }).count(), 0, 'no Allow button reachable in the frame');
      t.ok(console.some((m) => /frame-ancestors/.test(m)), `Chromium reported the blocked frame: ${console.join(' | ')}`);
    });

    await t.test('the page loads nothing but itself', async (t) => {
      const { context, page } = await newPage();
      t.teardown(() => context.close());
      const routed: string[] = [];
      const observed: string[] = [];
      await context.route('**/*', (route) => {
        routed.push(route.request().url());
        return route.continue();
      });
      page.on('request', (r) => observed.push(r.url()));
      const url = authorizeUrl('assets', pkce().challenge);
      await page.goto(url, { waitUntil: 'networkidle' });
      t.same(routed, [url], 'the only request intercepted is the page itself');
      t.same(observed, [url], 'the only request the page made is itself');
      t.equal(await page.locator('img, link[rel=stylesheet], script, iframe').count(), 0, 'no images, stylesheets, scripts or frames in the markup');
    });
  });
}
