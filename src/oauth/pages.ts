import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/**
 * Server-rendered pages of the authorization endpoint: the consent page and the error pages shown
 * instead of redirecting (unknown client, bad redirect URI, untrusted peer, missing user). No
 * external assets, no script; the one inline style block is allowed by its hash.
 */

const STYLE = `body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}
main{max-width:32rem;margin:4rem auto;background:#fff;border-radius:12px;padding:2rem;box-shadow:0 2px 12px rgba(0,0,0,.08)}
h1{font-size:1.3rem;margin:0 0 1rem}p,li{line-height:1.5}code{background:#eef0f3;padding:.1rem .3rem;border-radius:4px}
.who{color:#5a6275;font-size:.9rem}.host{font-weight:600}.buttons{display:flex;gap:.75rem;margin-top:1.5rem}
button{font:inherit;padding:.6rem 1.4rem;border-radius:8px;border:1px solid #c5cad3;background:#fff;cursor:pointer}
button.allow{background:#1f6feb;border-color:#1f6feb;color:#fff}ul{padding-left:1.2rem}`;
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** `formAction` lists where the consent form (and the redirect that follows it) may go. */
function securityHeaders(formAction: string[] = []): Record<string, string> {
  return {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    pragma: 'no-cache',
    'content-security-policy': `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; form-action 'self'${formAction.map((s) => ` ${s}`).join('')}; frame-ancestors 'none'; base-uri 'none'`,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
}

function layout(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body><main>${body}</main></body></html>`;
}

export function sendPage(res: ServerResponse, status: number, title: string, bodyHtml: string): void {
  res.writeHead(status, securityHeaders());
  res.end(layout(title, bodyHtml));
}

export function sendErrorPage(res: ServerResponse, status: number, title: string, message: string): void {
  sendPage(res, status, title, `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>`);
}

/** Shown for an unknown client_id: the client holds a registration this gateway no longer has. */
export function sendUnknownClientPage(res: ServerResponse, clientId: string): void {
  sendPage(res, 400, 'Unknown application', `<h1>This application is not registered here</h1>
<p>The application asking you to sign in used the client id <code>${escapeHtml(clientId.slice(0, 200))}</code>, which this gateway does not know.
It probably kept a registration from before the gateway was reset, or one an administrator deleted.</p>
<p>Clear the application's saved registration and connect again; it will register afresh:</p>
<ul>
<li><b>Claude.ai / Claude Desktop</b>: remove the connector in Settings → Connectors and add it again.</li>
<li><b>Claude Code</b>: run <code>/mcp</code>, choose the server and “Clear authentication”, or remove and re-add it with <code>claude mcp remove</code> / <code>claude mcp add</code>.</li>
<li><b>VS Code</b>: run “Authentication: Remove Dynamic Authentication Providers”, then start the server again.</li>
<li><b>Cursor</b>: remove the server from the MCP settings and add it again.</li>
<li><b>ChatGPT</b>: delete the connector and create it again.</li>
<li><b>mcp-remote</b>: delete <code>~/.mcp-auth</code> and restart.</li>
</ul>`);
}

export interface ConsentView {
  clientName: string;
  clientId: string;
  redirectHost: string;
  user: string;
  scopes: string[];
  hidden: Record<string, string>;
  formAction: string[];
}

export function sendConsentPage(res: ServerResponse, view: ConsentView): void {
  const hidden = Object.entries(view.hidden)
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join('');
  const scopes = view.scopes.length
    ? `<p>It asks for: ${view.scopes.map((s) => `<code>${escapeHtml(s)}</code>`).join(' ')}</p>`
    : '';
  const body = `<h1>Allow ${escapeHtml(view.clientName)} to use your MCP tools?</h1>
<p class="who">Signed in as <b>${escapeHtml(view.user)}</b></p>
<p><b>${escapeHtml(view.clientName)}</b> wants to act on your behalf through this gateway. After you allow it, you will be sent to <span class="host">${escapeHtml(view.redirectHost)}</span>.</p>
${scopes}
<p class="who">Client id: <code>${escapeHtml(view.clientId.slice(0, 200))}</code></p>
<form method="post" action="authorize">${hidden}
<div class="buttons"><button type="submit" name="decision" value="allow" class="allow">Allow</button><button type="submit" name="decision" value="deny">Cancel</button></div>
</form>`;
  res.writeHead(200, securityHeaders(view.formAction));
  res.end(layout('Authorize access', body));
}
