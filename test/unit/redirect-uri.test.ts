import t from 'tap';
import { readFileSync } from 'node:fs';
import {
  compileRedirectAllowlist, redirectUriMatchesRegistered, validateRedirectPattern,
} from '../../src/oauth/redirect-uri.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/servers.schema.json', import.meta.url), 'utf8'));
const DEFAULT_ALLOWLIST: string[] = schema.properties.serverAuth.properties.oauthAs.properties.redirectUriAllowlist.default;

t.test('every default pattern is valid', async (t) => {
  t.ok(DEFAULT_ALLOWLIST.length > 5);
  for (const pattern of DEFAULT_ALLOWLIST) t.equal(validateRedirectPattern(pattern), undefined, pattern);
});

t.test('default allowlist: real clients (CLIENTS.md) are allowed', async (t) => {
  const allowed = compileRedirectAllowlist(DEFAULT_ALLOWLIST);
  const rows: Array<[string, string]> = [
    ['Claude.ai / Desktop connector', 'https://claude.ai/api/mcp/auth_callback'],
    ['claude.com connector', 'https://claude.com/api/mcp/auth_callback'],
    ['ChatGPT per-connector callback', 'https://chatgpt.com/connector/oauth/cb_8f3a2d9e1b'],
    ['ChatGPT per-connector callback (other id)', 'https://chatgpt.com/connector/oauth/AbC-123_xyz'],
    ['ChatGPT legacy callback', 'https://chatgpt.com/connector_platform_oauth_redirect'],
    ['Cursor private-use scheme', 'cursor://anysphere.cursor-mcp/oauth/callback'],
    ['Cursor web callback', 'https://www.cursor.com/agents/mcp/oauth/callback'],
    ['Cursor loopback', 'http://localhost:8787/callback'],
    ['VS Code insiders', 'https://insiders.vscode.dev/redirect'],
    ['VS Code stable', 'https://vscode.dev/redirect'],
    ['VS Code port-less loopback', 'http://127.0.0.1/'],
    ['VS Code fixed loopback port', 'http://127.0.0.1:33418/'],
    ['VS Code fallback random port', 'http://127.0.0.1:51234/'],
    ['Claude Code CIMD (localhost, port-less)', 'http://localhost/callback'],
    ['Claude Code CIMD (127.0.0.1, port-less)', 'http://127.0.0.1/callback'],
    ['Claude Code actual ephemeral port', 'http://localhost:53124/callback'],
    ['mcp-remote default', 'http://localhost:3334/oauth/callback'],
    ['Gemini CLI style loopback', 'http://localhost:7777/oauth/callback'],
    ['IPv6 loopback', 'http://[::1]:4000/callback'],
    ['IPv6 loopback, long form (normalised)', 'http://[0:0:0:0:0:0:0:1]:4000/callback'],
    ['loopback without any path', 'http://localhost:1234'],
    ['uppercase host (hosts are case-insensitive)', 'https://CLAUDE.AI/api/mcp/auth_callback'],
    ['uppercase scheme', 'HTTPS://claude.ai/api/mcp/auth_callback'],
    ['uppercase loopback host', 'http://LOCALHOST:1234/callback'],
    ['explicit default port', 'https://claude.ai:443/api/mcp/auth_callback'],
  ];
  for (const [name, uri] of rows) t.ok(allowed(uri), `${name}: ${uri}`);
});

t.test('default allowlist: hostile and malformed URIs are refused', async (t) => {
  const allowed = compileRedirectAllowlist(DEFAULT_ALLOWLIST);
  const rows: Array<[string, string]> = [
    ['lookalike host suffix', 'https://claude.ai.evil.com/api/mcp/auth_callback'],
    ['lookalike host prefix', 'https://evilclaude.ai/api/mcp/auth_callback'],
    ['subdomain of an allowed host', 'https://x.claude.ai/api/mcp/auth_callback'],
    ['allowed URI in the query of another host', 'https://evil.com/?x=https://claude.ai/api/mcp/auth_callback'],
    ['userinfo that looks like the host', 'https://claude.ai@evil.com/api/mcp/auth_callback'],
    ['userinfo on the real host', 'https://user:pw@claude.ai/api/mcp/auth_callback'],
    ['empty userinfo', 'https://@claude.ai/api/mcp/auth_callback'],
    ['loopback userinfo', 'http://localhost@evil.com/callback'],
    ['loopback with port then userinfo', 'http://localhost:1234@evil.com/callback'],
    ['fragment', 'https://claude.ai/api/mcp/auth_callback#frag'],
    ['empty fragment', 'https://claude.ai/api/mcp/auth_callback#'],
    ['javascript:', 'javascript:alert(1)'],
    ['javascript: with slashes', 'javascript://claude.ai/api/mcp/auth_callback'],
    ['data:', 'data:text/html,<script>alert(1)</script>'],
    ['file:', 'file:///etc/passwd'],
    ['plain http on the internet', 'http://evil.com/'],
    ['http for an allowed https host', 'http://claude.ai/api/mcp/auth_callback'],
    ['dot-dot traversal out of the wildcard', 'https://chatgpt.com/connector/oauth/../../evil'],
    ['dot-dot segment as the wildcard value', 'https://chatgpt.com/connector/oauth/..'],
    ['encoded dot-dot as the wildcard value', 'https://chatgpt.com/connector/oauth/%2e%2e'],
    ['mixed encoded dot-dot', 'https://chatgpt.com/connector/oauth/.%2E'],
    ['single dot segment', 'https://claude.ai/api/mcp/./auth_callback'],
    ['encoded slash in the wildcard segment', 'https://chatgpt.com/connector/oauth/a%2Fb'],
    ['encoded slash, lowercase', 'https://chatgpt.com/connector/oauth/a%2fb'],
    ['encoded backslash', 'https://chatgpt.com/connector/oauth/a%5Cb'],
    ['backslash', 'https://claude.ai\\@evil.com/api/mcp/auth_callback'],
    ['malformed percent-escape', 'https://chatgpt.com/connector/oauth/a%zz'],
    ['two segments under a one-segment wildcard', 'https://chatgpt.com/connector/oauth/a/b'],
    ['empty wildcard segment', 'https://chatgpt.com/connector/oauth/'],
    ['trailing slash after the wildcard segment', 'https://chatgpt.com/connector/oauth/abc/'],
    ['wildcard parent itself', 'https://chatgpt.com/connector/oauth'],
    ['query on a wildcard match', 'https://chatgpt.com/connector/oauth/abc?x=1'],
    ['query on an exact match', 'https://claude.ai/api/mcp/auth_callback?next=https://evil.com'],
    ['bare "?"', 'https://claude.ai/api/mcp/auth_callback?'],
    ['path case differs (paths are case-sensitive)', 'https://claude.ai/api/mcp/AUTH_CALLBACK'],
    ['wildcard parent case differs', 'https://chatgpt.com/Connector/oauth/abc'],
    ['trailing slash on an exact path', 'https://claude.ai/api/mcp/auth_callback/'],
    ['extra path segment', 'https://claude.ai/api/mcp/auth_callback/x'],
    ['other port on an https host', 'https://claude.ai:8443/api/mcp/auth_callback'],
    ['trailing dot host', 'https://claude.ai./api/mcp/auth_callback'],
    ['wildcard host of ChatGPT', 'https://chatgpt.com.evil.com/connector/oauth/abc'],
    ['newline inside', 'https://claude.ai/api/mcp/auth_call\nback'],
    ['tab inside', 'https://claude.ai/api/mcp/auth\t_callback'],
    ['leading space', ' https://claude.ai/api/mcp/auth_callback'],
    ['non-ASCII path', 'https://claude.ai/api/mcp/auth_callbäck'],
    ['https on a loopback name (the any-port rule is http only)', 'https://localhost:1234/callback'],
    ['loopback-lookalike host', 'http://localhost.evil.com/callback'],
    ['other loopback address', 'http://127.0.0.2/callback'],
    ['unspecified address', 'http://0.0.0.0/callback'],
    ['other IPv6 address', 'http://[::2]/callback'],
    ['loopback with a query', 'http://localhost:1234/callback?x=1'],
    ['loopback with a fragment', 'http://localhost:1234/callback#x'],
    ['loopback with a dot-dot segment', 'http://localhost/a/../callback'],
    ['private-use scheme, other path', 'cursor://anysphere.cursor-mcp/oauth/callback/extra'],
    ['private-use scheme, other host', 'cursor://evil/oauth/callback'],
    ['private-use scheme, host case differs', 'cursor://Anysphere.cursor-mcp/oauth/callback'],
    ['private-use scheme not allowlisted', 'vscode://vscode.github-authentication/did-authenticate'],
    ['scheme-relative', '//claude.ai/api/mcp/auth_callback'],
    ['single slash after the scheme', 'https:/claude.ai/api/mcp/auth_callback'],
    ['no slashes after the scheme', 'https:claude.ai/api/mcp/auth_callback'],
    ['empty host (extra slash)', 'http:///localhost/callback'],
    ['not a URL', 'not a url'],
    ['empty', ''],
    ['very long', `https://chatgpt.com/connector/oauth/${'a'.repeat(5000)}`],
  ];
  for (const [name, uri] of rows) t.notOk(allowed(uri), `${name}: ${JSON.stringify(uri)}`);
  t.notOk(allowed(undefined as unknown as string), 'undefined');
});

t.test('pattern semantics: "/*" alone is any path, otherwise "*" is one segment', async (t) => {
  const rows: Array<{ pattern: string; yes: string[]; no: string[] }> = [
    {
      pattern: 'http://localhost/*',
      yes: ['http://localhost/', 'http://localhost', 'http://localhost/callback', 'http://localhost:9/oauth/callback', 'http://localhost/a/b/c/', 'http://localhost/*'],
      no: ['http://127.0.0.1/callback', 'https://localhost/callback'],
    },
    {
      pattern: 'https://chatgpt.com/connector/oauth/*',
      yes: ['https://chatgpt.com/connector/oauth/abc', 'https://chatgpt.com/connector/oauth/a.b~c-d_e', 'https://chatgpt.com/connector/oauth/%41'],
      no: ['https://chatgpt.com/connector/oauth/a/b', 'https://chatgpt.com/connector/oauth/', 'https://chatgpt.com/connector/oauth/abc/', 'https://chatgpt.com/connector/oauth'],
    },
    {
      pattern: 'https://app.example.com/t/*/callback',
      yes: ['https://app.example.com/t/acme/callback'],
      no: ['https://app.example.com/t/a/b/callback', 'https://app.example.com/t//callback', 'https://app.example.com/t/acme/callback/x'],
    },
    {
      pattern: 'cursor://anysphere.cursor-retrieval/oauth/user-*/callback',
      yes: ['cursor://anysphere.cursor-retrieval/oauth/user-github/callback'],
      no: ['cursor://anysphere.cursor-retrieval/oauth/user-/callback', 'cursor://anysphere.cursor-retrieval/oauth/user-a/b/callback', 'cursor://anysphere.cursor-retrieval/oauth/xuser-a/callback'],
    },
    {
      pattern: 'https://app.example.com/cb?tenant=1',
      yes: ['https://app.example.com/cb?tenant=1'],
      no: ['https://app.example.com/cb', 'https://app.example.com/cb?tenant=2', 'https://app.example.com/cb?tenant=1&x=2', 'https://app.example.com/cb?'],
    },
    {
      pattern: 'http://localhost:8787/callback',
      yes: ['http://localhost:8787/callback', 'http://localhost:1/callback', 'http://localhost/callback'],
      no: ['http://localhost:8787/oauth/callback'],
    },
    {
      pattern: 'https://example.com:8443/cb',
      yes: ['https://example.com:8443/cb'],
      no: ['https://example.com/cb', 'https://example.com:443/cb', 'https://example.com:8444/cb'],
    },
    {
      pattern: 'https://localhost/cb',
      yes: ['https://localhost/cb'],
      no: ['https://localhost:8443/cb', 'http://localhost/cb'],
    },
    {
      pattern: 'com.example.app:/oauth2redirect',
      yes: ['com.example.app:/oauth2redirect'],
      no: ['com.example.app:/oauth2redirect/x', 'com.example.evil:/oauth2redirect', 'com.example.app://evil/oauth2redirect'],
    },
    {
      pattern: 'https://example.com/a.b(c)+$',
      yes: ['https://example.com/a.b(c)+$'],
      no: ['https://example.com/aXb(c)+$', 'https://example.com/a.b(c)$'],
    },
  ];
  for (const row of rows) {
    t.equal(validateRedirectPattern(row.pattern), undefined, `valid: ${row.pattern}`);
    const allowed = compileRedirectAllowlist([row.pattern]);
    for (const uri of row.yes) t.ok(allowed(uri), `${row.pattern} matches ${uri}`);
    for (const uri of row.no) t.notOk(allowed(uri), `${row.pattern} does not match ${uri}`);
  }
});

t.test('invalid patterns', async (t) => {
  const rows: Array<[string, RegExp]> = [
    ['https://*.example.com/cb', /wildcard hosts/],
    ['https://claude.*/cb', /wildcard hosts/],
    ['https://*/cb', /wildcard hosts/],
    ['https://example.com:*/cb', /host or port/],
    ['http://example.com/cb', /http is only allowed for loopback/],
    ['http://127.0.0.2/cb', /http is only allowed for loopback/],
    ['javascript:alert(1)', /never allowed/],
    ['data:text/html,x', /never allowed/],
    ['file:///etc/passwd', /never allowed/],
    ['ws://localhost/cb', /never allowed/],
    ['https://example.com/cb#x', /fragment/],
    ['https://user@example.com/cb', /userinfo/],
    ['https://example.com/**', /"\*\*"/],
    ['https://example.com/a/**/b', /"\*\*"/],
    ['https://example.com/cb?x=*', /query/],
    ['https://example.com/a/../b', /"\." or "\.\."/],
    ['https://example.com/a%2Fb', /encoded slash/],
    ['not-a-url', /no scheme/],
    ['not a url', /whitespace/],
    ['https://exa mple.com/cb', /whitespace/],
    ['mailto:a@example.com', /never allowed/],
    ['urn:ietf:wg:oauth:2.0:oob', /hierarchical/],
    ['https:/example.com/cb', /no host/],
    ['', /empty/],
  ];
  for (const [pattern, message] of rows) {
    const error = validateRedirectPattern(pattern);
    t.match(error, message, `${JSON.stringify(pattern)} → ${error}`);
  }
  t.throws(() => compileRedirectAllowlist(['https://ok.example.com/cb', 'https://*.example.com/cb', 'http://evil.com/']),
    /wildcard hosts.*http is only allowed/s, 'compile reports every invalid pattern at once');
  t.notOk(compileRedirectAllowlist([])('https://claude.ai/api/mcp/auth_callback'), 'an empty allowlist allows nothing');
});

t.test('redirectUriMatchesRegistered: exact, loopback port aside', async (t) => {
  const rows: Array<{ name: string; requested: string; registered: string[]; expected: string | undefined }> = [
    { name: 'exact https', requested: 'https://claude.ai/api/mcp/auth_callback', registered: ['https://claude.ai/api/mcp/auth_callback'], expected: 'https://claude.ai/api/mcp/auth_callback' },
    { name: 'Claude Code: port-less localhost registered, ephemeral port requested', requested: 'http://localhost:53124/callback', registered: ['http://localhost/callback', 'http://127.0.0.1/callback'], expected: 'http://localhost/callback' },
    { name: 'Claude Code: 127.0.0.1 variant', requested: 'http://127.0.0.1:40000/callback', registered: ['http://localhost/callback', 'http://127.0.0.1/callback'], expected: 'http://127.0.0.1/callback' },
    { name: 'VS Code: 33418 registered, random port requested', requested: 'http://127.0.0.1:51000/', registered: ['https://vscode.dev/redirect', 'http://127.0.0.1:33418/'], expected: 'http://127.0.0.1:33418/' },
    { name: 'VS Code: port-less requested against a ported registration', requested: 'http://127.0.0.1/', registered: ['http://127.0.0.1:33418/'], expected: 'http://127.0.0.1:33418/' },
    { name: 'IPv6 loopback', requested: 'http://[::1]:5000/cb', registered: ['http://[::1]/cb'], expected: 'http://[::1]/cb' },
    { name: 'Cursor: exact among three', requested: 'http://localhost:8787/callback', registered: ['cursor://anysphere.cursor-mcp/oauth/callback', 'https://www.cursor.com/agents/mcp/oauth/callback', 'http://localhost:8787/callback'], expected: 'http://localhost:8787/callback' },
    { name: 'private-use scheme exact', requested: 'cursor://anysphere.cursor-mcp/oauth/callback', registered: ['cursor://anysphere.cursor-mcp/oauth/callback'], expected: 'cursor://anysphere.cursor-mcp/oauth/callback' },
    { name: 'localhost is not 127.0.0.1', requested: 'http://localhost:53124/callback', registered: ['http://127.0.0.1/callback'], expected: undefined },
    { name: '127.0.0.1 is not localhost', requested: 'http://127.0.0.1:53124/callback', registered: ['http://localhost/callback'], expected: undefined },
    { name: 'loopback path differs', requested: 'http://localhost:53124/oauth/callback', registered: ['http://localhost/callback'], expected: undefined },
    { name: 'loopback trailing slash differs', requested: 'http://localhost:53124/callback/', registered: ['http://localhost/callback'], expected: undefined },
    { name: 'loopback query added', requested: 'http://localhost:53124/callback?x=1', registered: ['http://localhost/callback'], expected: undefined },
    { name: 'loopback fragment added', requested: 'http://localhost:53124/callback#x', registered: ['http://localhost/callback'], expected: undefined },
    { name: 'loopback out-of-range port', requested: 'http://localhost:99999/callback', registered: ['http://localhost/callback'], expected: undefined },
    { name: 'loopback userinfo trick', requested: 'http://localhost:1234@evil.com/callback', registered: ['http://localhost/callback'], expected: undefined },
    { name: 'loopback-lookalike host', requested: 'http://localhost.evil.com/callback', registered: ['http://localhost/callback'], expected: undefined },
    { name: 'https loopback port is NOT ignored', requested: 'https://localhost:1234/callback', registered: ['https://localhost/callback'], expected: undefined },
    { name: 'https port matters', requested: 'https://claude.ai:443/api/mcp/auth_callback', registered: ['https://claude.ai/api/mcp/auth_callback'], expected: undefined },
    { name: 'https host case matters (exact string)', requested: 'https://CLAUDE.AI/api/mcp/auth_callback', registered: ['https://claude.ai/api/mcp/auth_callback'], expected: undefined },
    { name: 'https trailing slash', requested: 'https://claude.ai/api/mcp/auth_callback/', registered: ['https://claude.ai/api/mcp/auth_callback'], expected: undefined },
    { name: 'ChatGPT: another connector id', requested: 'https://chatgpt.com/connector/oauth/other', registered: ['https://chatgpt.com/connector/oauth/mine'], expected: undefined },
    { name: 'empty requested', requested: '', registered: ['http://localhost/callback'], expected: undefined },
    { name: 'nothing registered', requested: 'http://localhost:1/callback', registered: [], expected: undefined },
  ];
  for (const row of rows) t.equal(redirectUriMatchesRegistered(row.requested, row.registered), row.expected, row.name);
});
