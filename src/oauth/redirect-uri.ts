/**
 * Redirect URIs (DESIGN.md §7 "Redirect URIs", SPEC-NOTES A.9).
 *
 * Two questions, two functions:
 *
 * 1. May a client REGISTER this redirect URI? `compileRedirectAllowlist(patterns)` turns the
 *    configured `redirectUriAllowlist` into a predicate, once, at startup (an invalid pattern throws).
 * 2. Is the `redirect_uri` of an authorization request one the client registered?
 *    `redirectUriMatchesRegistered(requested, registered)`: exact string equality, loopback port aside.
 *
 * ## Pattern rules (precisely)
 *
 * A pattern is a URL, compared with a candidate structurally, part by part:
 *
 * - **scheme**: equal. `https` for anything on the network; `http` only with a loopback host
 *   (`127.0.0.1`, `[::1]`, `localhost`); any other scheme is a private-use scheme (RFC 8252 §7.1,
 *   e.g. `cursor://anysphere.cursor-mcp/oauth/callback`) and a candidate may use it only when a
 *   pattern names it. `javascript:`, `data:`, `file:`, `vbscript:`, `blob:`, `about:`, `filesystem:`,
 *   `ftp:`, `ws:`, `wss:` and `mailto:` are refused outright, and so is any URL that is not
 *   hierarchical (nothing but a path starting with `/` or an authority `//...` after the scheme).
 * - **host**: equal, never a glob (`https://*.example.com` is an invalid pattern). For http(s) the
 *   host is compared after URL parsing, so it is case-insensitive (`https://CLAUDE.AI/...` is
 *   `https://claude.ai/...`) and IDNs compare in punycode; a trailing dot is a different host. For
 *   private-use schemes the "host" is compared exactly, case included.
 * - **port**: equal (a default port is the same as no port: `https://x:443/` is `https://x/`),
 *   except for loopback `http` patterns, which match any port (RFC 8252 §7.3).
 * - **path**: case-sensitive, compared on the raw (not decoded) path, segment by segment:
 *   - a literal segment matches itself only;
 *   - `*` inside a segment matches one or more characters other than `/` (so a segment that is just
 *     `*` matches exactly one non-empty segment, and `user-*` matches `user-x`);
 *   - **the one suffix rule**: a pattern whose whole path is `/*` matches ANY path on that
 *     scheme/host/port, including `/` and multi-segment paths (`http://localhost/*` matches `/`,
 *     `/callback` and `/oauth/callback`). A `*` that is the last of several segments is still one
 *     segment: `https://chatgpt.com/connector/oauth/*` matches `/connector/oauth/abc` but neither
 *     `/connector/oauth/a/b`, `/connector/oauth/` nor `/connector/oauth/abc/`. (DESIGN.md says "a whole
 *     path suffix when it is the last segment"; the default allowlist uses the suffix form only as
 *     `<loopback>/*`, and ChatGPT's per-connector callbacks must stay one segment, so the suffix form
 *     is exactly "the pattern's path is `/*`".)
 *   - `**` is not supported (invalid pattern).
 * - **query**: a candidate's query (everything from `?`, even a bare `?`) must equal the pattern's
 *   query exactly; patterns normally have none, so candidates with a query are refused.
 *
 * Always refused, whatever the patterns: unparseable URIs; fragments (`#`, even empty); userinfo
 * (any `@` in the authority); `http` for a non-loopback host; whitespace, control or non-ASCII
 * characters (the URL parser would silently strip some); backslashes; `.`/`..` path segments, also
 * percent-encoded (the URL parser would resolve them, so `.../oauth/../../evil` is refused, not
 * resolved); encoded slashes `%2F` / `%5C`; malformed percent-escapes.
 *
 * ## Registered-URI rule
 *
 * Exact string equality, except for loopback `http` URIs (`http://127.0.0.1`, `http://[::1]`,
 * `http://localhost`, lowercase as registered): there, the port is ignored on both sides and
 * everything else must be equal. So a registered port-less `http://localhost/callback` matches
 * `http://localhost:53124/callback`, and `http://127.0.0.1:33418/` matches `http://127.0.0.1:51000/`.
 * `localhost` and `127.0.0.1` are not interchangeable.
 */

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);
const FORBIDDEN_SCHEMES = new Set([
  'javascript:', 'data:', 'file:', 'vbscript:', 'blob:', 'about:', 'filesystem:', 'ftp:', 'ws:', 'wss:', 'mailto:',
]);
const MAX_URI_LENGTH = 2048;

interface ParsedUri {
  /** Lowercase, with the colon: `https:`. */
  scheme: string;
  hostname: string;
  port: string;
  /** The raw path, `/` when empty for http(s). */
  path: string;
  /** Everything from `?` (raw), or '' when there is no `?` at all. */
  query: string;
  loopback: boolean;
}

/** Strict parse shared by patterns and candidates: an error message, or the parts to compare. */
function parseStrict(raw: unknown): ParsedUri | string {
  if (typeof raw !== 'string' || raw.length === 0) return 'is empty';
  if (raw.length > MAX_URI_LENGTH) return `is longer than ${MAX_URI_LENGTH} characters`;
  if (!/^[\x21-\x7e]+$/.test(raw)) return 'contains whitespace, control or non-ASCII characters';
  if (raw.includes('#')) return 'has a fragment ("#")';
  if (raw.includes('\\')) return 'contains a backslash';
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/.exec(raw);
  if (!match) return 'has no scheme';
  const scheme = `${match[1]!.toLowerCase()}:`;
  if (FORBIDDEN_SCHEMES.has(scheme)) return `uses the scheme "${scheme}", which is never allowed`;
  const rest = match[2]!;
  if (!rest.startsWith('/')) return 'is not a hierarchical URL';

  const queryAt = rest.indexOf('?');
  const beforeQuery = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const query = queryAt === -1 ? '' : rest.slice(queryAt);
  let path = beforeQuery;
  if (beforeQuery.startsWith('//')) {
    const slash = beforeQuery.indexOf('/', 2);
    const authority = slash === -1 ? beforeQuery.slice(2) : beforeQuery.slice(2, slash);
    if (authority === '') return 'has an empty host';
    if (authority.includes('@')) return 'has userinfo ("user@host")';
    path = slash === -1 ? '' : beforeQuery.slice(slash);
  } else if (scheme === 'http:' || scheme === 'https:') {
    return 'has no host';
  }

  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'is not a valid URL';
  }
  if (url.username || url.password) return 'has userinfo ("user@host")';

  if (/%(?![0-9A-Fa-f]{2})/.test(path) || /%(?![0-9A-Fa-f]{2})/.test(query)) return 'has a malformed percent-escape';
  if (/%2f|%5c/i.test(path)) return 'has an encoded slash (%2F or %5C) in its path';
  for (const segment of path.split('/')) {
    const decoded = segment.replace(/%2e/gi, '.');
    if (decoded === '.' || decoded === '..') return 'has a "." or ".." path segment';
  }
  const special = scheme === 'http:' || scheme === 'https:';
  if (special && path === '') path = '/';

  const hostname = url.hostname;
  return {
    scheme,
    hostname,
    port: url.port,
    path,
    query,
    loopback: scheme === 'http:' && LOOPBACK_HOSTS.has(hostname),
  };
}

interface CompiledPattern {
  scheme: string;
  hostname: string;
  port: string;
  loopback: boolean;
  query: string;
  /** The pattern's path is `/*`: any path. */
  anyPath: boolean;
  /** Path segments after the leading `/`: literals, or matchers for segments containing `*`. */
  segments: Array<string | RegExp>;
}

/**
 * The error message for an invalid `redirectUriAllowlist` entry, or `undefined` when it is valid.
 * Used by config checking and by `compileRedirectAllowlist`.
 */
export function validateRedirectPattern(pattern: string): string | undefined {
  const compiled = compilePattern(pattern);
  return typeof compiled === 'string' ? compiled : undefined;
}

function compilePattern(pattern: string): CompiledPattern | string {
  if (typeof pattern === 'string' && /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*\*/.test(pattern)) {
    return `redirect URI pattern "${pattern}": "*" is not allowed in the host or port (wildcard hosts are not supported; list each host)`;
  }
  const parsed = parseStrict(pattern);
  if (typeof parsed === 'string') return `redirect URI pattern "${String(pattern)}" ${parsed}`;
  if (parsed.hostname.includes('*')) {
    return `redirect URI pattern "${pattern}": "*" is not allowed in the host (wildcard hosts are not supported; list each host)`;
  }
  if (parsed.scheme === 'http:' && !parsed.loopback) {
    return `redirect URI pattern "${pattern}": http is only allowed for loopback hosts (127.0.0.1, [::1], localhost); use https`;
  }
  if (parsed.query.includes('*')) return `redirect URI pattern "${pattern}": "*" is not allowed in the query`;
  if (parsed.path.includes('**')) return `redirect URI pattern "${pattern}": "**" is not supported (use "/*" as the whole path for any path)`;
  const anyPath = parsed.path === '/*';
  const segments = parsed.path.split('/').slice(1).map((segment) =>
    segment.includes('*') ? new RegExp(`^${segment.split('*').map(escapeRegExp).join('[^/]+')}$`) : segment);
  return {
    scheme: parsed.scheme,
    hostname: parsed.hostname,
    port: parsed.port,
    loopback: parsed.loopback,
    query: parsed.query,
    anyPath,
    segments,
  };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Compiles `redirectUriAllowlist` into a predicate (once, at startup). Throws an Error listing every
 * invalid pattern. See the module comment for the exact rules.
 */
export function compileRedirectAllowlist(patterns: string[]): (uri: string) => boolean {
  const compiled: CompiledPattern[] = [];
  const problems: string[] = [];
  for (const pattern of patterns) {
    const result = compilePattern(pattern);
    if (typeof result === 'string') problems.push(result);
    else compiled.push(result);
  }
  if (problems.length > 0) throw new Error(`invalid redirectUriAllowlist: ${problems.join('; ')}`);

  return (uri: string): boolean => {
    const candidate = parseStrict(uri);
    if (typeof candidate === 'string') return false;
    if (candidate.scheme === 'http:' && !candidate.loopback) return false;
    return compiled.some((pattern) => matches(pattern, candidate));
  };
}

function matches(pattern: CompiledPattern, candidate: ParsedUri): boolean {
  if (pattern.scheme !== candidate.scheme) return false;
  if (pattern.hostname !== candidate.hostname) return false;
  if (!pattern.loopback && pattern.port !== candidate.port) return false;
  if (pattern.query !== candidate.query) return false;
  if (pattern.anyPath) return true;
  const segments = candidate.path.split('/').slice(1);
  if (segments.length !== pattern.segments.length) return false;
  return pattern.segments.every((expected, i) => {
    const actual = segments[i]!;
    return typeof expected === 'string' ? expected === actual : expected.test(actual);
  });
}

const LOOPBACK_URI = /^http:\/\/(127\.0\.0\.1|\[::1\]|localhost)(?::(\d{1,5}))?(?=[/?]|$)(.*)$/s;

/** `http://<loopback host><rest>` with the port removed, or undefined when not a loopback http URI. */
function withoutLoopbackPort(uri: string): string | undefined {
  const match = LOOPBACK_URI.exec(uri);
  if (!match) return undefined;
  if (match[2] !== undefined && Number(match[2]) > 65535) return undefined;
  return `http://${match[1]}${match[3]}`;
}

/**
 * The registered redirect URI that `requested` designates, or `undefined`: exact string equality,
 * except loopback http URIs, whose port is ignored (RFC 8252 §7.3; see the module comment).
 */
export function redirectUriMatchesRegistered(requested: string, registered: string[]): string | undefined {
  if (typeof requested !== 'string' || requested.length === 0) return undefined;
  const exact = registered.find((entry) => entry === requested);
  if (exact !== undefined) return exact;
  const portless = withoutLoopbackPort(requested);
  if (portless === undefined) return undefined;
  return registered.find((entry) => withoutLoopbackPort(entry) === portless);
}
