import { createServer } from 'node:http';
import { chromium, type Browser } from 'playwright-core';
import { listen } from './nginx.js';

/**
 * Real headless Chromium (the Debian package) driven by playwright-core, which downloads no browser
 * of its own. Tests get the binary from `requireSystemBinary(t, CHROMIUM)` first.
 */

interface Tap {
  teardown(fn: () => unknown): void;
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export async function launchChromium(t: Tap, executablePath: string): Promise<Browser> {
  const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 30_000 });
  t.teardown(() => browser.close());
  return browser;
}

export interface LoopbackSite {
  url: string;
  port: number;
  /** Every request the site received, as full URLs. */
  hits: URL[];
}

/**
 * A tiny site on a loopback address: `pages` maps a path to the HTML it serves; any other path
 * answers a short "received" page (an OAuth client's redirect URI, for example).
 */
export async function startLoopbackSite(t: Tap, host = '127.0.0.1', pages: Record<string, string> = {}): Promise<LoopbackSite> {
  const hits: URL[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${host}`);
    hits.push(url);
    const page = pages[url.pathname];
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(page ?? '<!doctype html><title>Received</title><p>received</p>');
  });
  const port = await listen(server, 0, host);
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `http://${host}:${port}`, port, hits };
}

export function escapeAttribute(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** An HTML page whose form POSTs `fields` to `action` as soon as it loads. */
export function autoSubmitPage(action: string, fields: Record<string, string>): string {
  const inputs = Object.entries(fields).map(([name, value]) => `<input type="hidden" name="${escapeAttribute(name)}" value="${escapeAttribute(value)}">`).join('');
  return `<!doctype html><title>Win a prize</title><form method="post" action="${escapeAttribute(action)}">${inputs}</form><script>document.forms[0].submit()</script>`;
}
