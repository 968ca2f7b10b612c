/**
 * The RFC 8707 `resource` parameter (SPEC-NOTES A.5 and §0 pitfalls).
 *
 * The gateway hosts exactly one protected resource, `/mcp` under the issuer: its canonical URI is
 * `<issuerUrl>/mcp`, and every access token's `aud` is that string. Clients spell it in several
 * ways, so `/oauth/authorize` and `/oauth/token` accept, and map to the canonical URI:
 *
 * - the canonical URI itself and its trailing-slash twin (`https://gw.example.com/mcp/`);
 * - the bare origin, with or without a trailing slash (`https://gw.example.com`,
 *   `https://gw.example.com/`), which some clients send when PRM is pathless or they trim paths;
 * - with scheme and host in any case (`HTTPS://GW.Example.COM/mcp`) and an explicit default port
 *   (`https://gw.example.com:443/mcp`): URL parsing normalises them. The path is case-sensitive.
 *
 * Anything else (another host or port, another path, a query, a fragment, userinfo, `.`/`..` or
 * percent-encoded path tricks, a relative or unparseable value) is `undefined`: the caller answers
 * `invalid_target`. An absent (or empty) `resource` means the canonical one (older clients omit it).
 */

/** `<issuerUrl>/mcp` (a trailing slash on the issuer is ignored). */
export function canonicalResource(issuerUrl: string): string {
  return `${issuerUrl.replace(/\/+$/, '')}/mcp`;
}

/** The canonical resource that `requested` designates, or `undefined` (→ `invalid_target`). */
export function resolveResource(requested: string | undefined, issuerUrl: string): string | undefined {
  const canonical = canonicalResource(issuerUrl);
  if (requested === undefined || requested === '') return canonical;
  if (typeof requested !== 'string' || requested.length > 2048) return undefined;
  if (requested === canonical) return canonical;
  if (!/^[\x21-\x7e]+$/.test(requested) || /[?#\\@]/.test(requested)) return undefined;

  const parts = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]+)(\/.*)?$/.exec(requested);
  if (!parts) return undefined;
  const rawPath = parts[2] ?? '';
  let url: URL;
  let issuer: URL;
  try {
    url = new URL(requested);
    issuer = new URL(canonical);
  } catch {
    return undefined;
  }
  if (url.origin === 'null' || url.origin !== issuer.origin) return undefined;
  const canonicalPath = issuer.pathname; // e.g. /mcp or /base/mcp
  const accepted = [canonicalPath, `${canonicalPath}/`, '', '/'];
  return accepted.includes(rawPath) ? canonical : undefined;
}
