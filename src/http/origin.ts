import { isLoopbackAddress } from './peer.js';

export interface OriginPolicyOptions {
  /** The address the server is bound to. */
  bindHost: string;
  allowedHosts: readonly string[];
  allowedOrigins: readonly string[];
  /** The public URL (OAuth issuer), whose host and origin are always allowed. */
  publicUrl?: string;
}

export type OriginVerdict = { ok: true; corsOrigin?: string } | { ok: false; message: string };

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];

/**
 * DNS-rebinding and cross-site protection for `/mcp` (MCP transports: servers MUST validate
 * `Origin`; a present and invalid one gets 403). On a loopback bind, or when `allowedHosts` is set,
 * the `Host` header must name an allowed host; a present `Origin` must be an allowed origin, or
 * have an allowed host, or (on a non-loopback bind) be the request's own origin.
 */
export function compileOriginPolicy(options: OriginPolicyOptions): (host: string | undefined, origin: string | undefined) => OriginVerdict {
  const hosts = new Set(options.allowedHosts.map((h) => hostnameOf(h)));
  const origins = new Set(options.allowedOrigins.map((o) => o.replace(/\/$/, '').toLowerCase()));
  if (options.publicUrl) {
    const url = new URL(options.publicUrl);
    hosts.add(url.hostname.replace(/^\[|\]$/g, '').toLowerCase());
    origins.add(url.origin.toLowerCase());
  }
  const loopbackBind = isLoopbackAddress(options.bindHost) || options.bindHost === 'localhost';
  const enforceHost = loopbackBind || options.allowedHosts.length > 0;
  const hostAllowed = (name: string) => hosts.has(name) || LOOPBACK_NAMES.includes(name);

  return (hostHeader, originHeader) => {
    const host = hostHeader ? hostnameOf(hostHeader) : '';
    if (enforceHost && !hostAllowed(host)) {
      return { ok: false, message: `Forbidden: Host "${hostHeader ?? ''}" is not allowed` };
    }
    if (originHeader === undefined) return { ok: true };
    let origin: URL;
    try {
      origin = new URL(originHeader);
    } catch {
      return { ok: false, message: 'Forbidden: malformed Origin' };
    }
    const normalized = origin.origin.toLowerCase();
    const originHost = origin.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    if (origins.has(normalized)) return { ok: true, corsOrigin: originHeader };
    if (enforceHost ? hostAllowed(originHost) : originHost === host) return { ok: true, corsOrigin: originHeader };
    return { ok: false, message: `Forbidden: Origin "${originHeader}" is not allowed` };
  };
}

/** `example.com:8080` → `example.com`, `[::1]:80` → `::1`. */
function hostnameOf(value: string): string {
  const trimmed = value.trim().toLowerCase();
  if (trimmed.startsWith('[')) return trimmed.slice(1, trimmed.indexOf(']') === -1 ? undefined : trimmed.indexOf(']'));
  const colon = trimmed.indexOf(':');
  return colon === -1 || trimmed.indexOf(':', colon + 1) !== -1 ? trimmed : trimmed.slice(0, colon);
}
