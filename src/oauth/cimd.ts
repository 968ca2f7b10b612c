import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { Agent, request } from 'undici';
import type { OAuthAsConfig } from '../config/types.js';
import { isPublicAddress } from '../http/peer.js';
import type { Logger } from '../log.js';
import { OAuthError } from './errors.js';
import type { ClientRecord } from './clients.js';

const MAX_BYTES = 5 * 1024;
const TIMEOUT_MS = 5000;
const DEFAULT_TTL_MS = 5 * 60_000;
const MAX_TTL_MS = 24 * 3600_000;
const MAX_ENTRIES = 1000;

export interface CimdOptions {
  /** Extra TLS options for the fetch (e.g. `ca` for a corporate CA). */
  tls?: { ca?: string | Buffer };
}

/**
 * Client ID Metadata Documents: a `client_id` that is an https URL names a JSON document describing
 * the client. Fetched with SSRF protections (https only, no redirects, 5 KB cap, 5 s timeout, the
 * resolved address checked and pinned, private/loopback/link-local refused unless allowed), cached
 * per its Cache-Control, errors never cached. The document's `client_id` must equal the URL, and
 * only its redirect URIs that pass the allowlist are kept.
 */
export class ClientMetadataDocuments {
  private readonly cache = new Map<string, { client: ClientRecord; expiresAt: number }>();
  private readonly agent: Agent;

  constructor(
    private readonly config: OAuthAsConfig,
    private readonly redirectAllowed: (uri: string) => boolean,
    private readonly logger: Logger,
    options: CimdOptions = {},
  ) {
    const allowPrivate = config.clientIdMetadataDocuments.allowPrivateAddresses;
    this.agent = new Agent({
      connect: {
        timeout: TIMEOUT_MS,
        ...(options.tls ?? {}),
        // The address is checked at connect time and the socket uses exactly that address (no second
        // DNS answer can slip a private address in between check and use).
        lookup: (hostname: string, opts: { all?: boolean }, callback: (...args: unknown[]) => void) => {
          dnsLookup(hostname, { all: true }, (error, addresses: LookupAddress[]) => {
            if (error) return callback(error);
            const usable = addresses.filter((a) => allowPrivate || isPublicAddress(a.address));
            if (usable.length === 0) return callback(Object.assign(new Error(`${hostname} resolves only to non-public addresses`), { code: 'EBLOCKED' }));
            if (opts?.all) return callback(null, usable);
            return callback(null, usable[0]!.address, usable[0]!.family);
          });
        },
      } as never,
      keepAliveTimeout: 10_000,
    });
  }

  /** A client from its metadata document URL; throws OAuthError (invalid_client) when it cannot be used. */
  async resolve(url: string, now = Date.now()): Promise<ClientRecord> {
    const cached = this.cache.get(url);
    if (cached && cached.expiresAt > now) return cached.client;
    this.cache.delete(url);
    const host = checkClientIdUrl(url);
    // An IP-literal host never reaches the connect-time `lookup` below (net.connect skips DNS for
    // literals), so the address rule is applied to it here.
    if (isIP(host) && !this.config.clientIdMetadataDocuments.allowPrivateAddresses && !isPublicAddress(host)) {
      throw fail(url, `could not fetch the client metadata document (${host} is not a public address)`);
    }
    let response;
    try {
      response = await request(url, {
        dispatcher: this.agent,
        method: 'GET',
        headers: { accept: 'application/json' },
        headersTimeout: TIMEOUT_MS,
        bodyTimeout: TIMEOUT_MS,
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (error) {
      throw fail(url, `could not fetch the client metadata document (${(error as Error).message})`);
    }
    if (response.statusCode !== 200) {
      await response.body.dump().catch(() => {});
      throw fail(url, `the client metadata document answered HTTP ${response.statusCode} (redirects are not followed)`);
    }
    let text = '';
    let size = 0;
    for await (const chunk of response.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_BYTES) {
        response.body.destroy();
        throw fail(url, `the client metadata document is larger than ${MAX_BYTES} bytes`);
      }
      text += (chunk as Buffer).toString('utf8');
    }
    let document: Record<string, unknown>;
    try {
      document = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw fail(url, 'the client metadata document is not valid JSON');
    }
    const client = this.toClient(url, document, now);
    const ttl = cacheTtl(String(response.headers['cache-control'] ?? ''));
    if (ttl > 0) {
      if (this.cache.size >= MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(url, { client, expiresAt: now + ttl });
    }
    return client;
  }

  private toClient(url: string, document: Record<string, unknown>, now: number): ClientRecord {
    if (!document || typeof document !== 'object' || Array.isArray(document)) throw fail(url, 'the client metadata document is not a JSON object');
    if (document.client_id !== url) throw fail(url, 'the document\'s client_id does not equal its URL');
    if ('client_secret' in document || 'client_secret_expires_at' in document) throw fail(url, 'a client metadata document must not contain a client secret');
    const method = document.token_endpoint_auth_method;
    if (method === 'client_secret_basic' || method === 'client_secret_post' || method === 'client_secret_jwt') {
      throw fail(url, `token_endpoint_auth_method "${method}" needs a shared secret, which a metadata document cannot have`);
    }
    const uris = document.redirect_uris;
    if (!Array.isArray(uris) || uris.length === 0 || !uris.every((u) => typeof u === 'string')) throw fail(url, 'redirect_uris must be a non-empty array of strings');
    const allowed = (uris as string[]).filter((u) => this.redirectAllowed(u));
    if (allowed.length === 0) throw fail(url, 'none of the document\'s redirect_uris is allowed by this gateway\'s redirectUriAllowlist');
    if (allowed.length < uris.length) this.logger.info({ clientId: url, refused: (uris as string[]).filter((u) => !allowed.includes(u)) }, 'metadata document redirect URIs outside the allowlist ignored');
    return {
      client_id: url,
      client_name: typeof document.client_name === 'string' ? document.client_name.slice(0, 200) : undefined,
      client_uri: typeof document.client_uri === 'string' ? document.client_uri : undefined,
      redirect_uris: allowed,
      grant_types: ['authorization_code', 'refresh_token'],
      scope: typeof document.scope === 'string' ? document.scope : undefined,
      token_endpoint_auth_method: 'none',
      client_id_issued_at: Math.floor(now / 1000),
      createdAt: now,
      source: 'cimd',
    };
  }

  async close(): Promise<void> {
    await this.agent.close().catch(() => {});
  }
}

/** CIMD client_id URL rules: https, a path, no fragment, userinfo or dot segments. Returns the host name (IPv6 without brackets). */
function checkClientIdUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw fail(url, 'the client_id is not a URL');
  }
  if (parsed.protocol !== 'https:') throw fail(url, 'a URL client_id must use https');
  if (parsed.username || parsed.password) throw fail(url, 'a URL client_id must not contain userinfo');
  if (parsed.hash || url.includes('#')) throw fail(url, 'a URL client_id must not contain a fragment');
  if (parsed.pathname === '/' || parsed.pathname === '') throw fail(url, 'a URL client_id must have a path');
  if (/(^|\/)\.\.?(\/|$)/.test(url.slice(parsed.origin.length).split('?')[0]!)) throw fail(url, 'a URL client_id must not contain . or .. segments');
  return parsed.hostname.replace(/^\[(.*)\]$/, '$1');
}

function cacheTtl(cacheControl: string): number {
  if (/\b(no-store|no-cache|private)\b/i.test(cacheControl)) return 0;
  const maxAge = /\bmax-age=(\d+)/i.exec(cacheControl);
  if (!maxAge) return DEFAULT_TTL_MS;
  return Math.min(MAX_TTL_MS, Number(maxAge[1]) * 1000);
}

function fail(url: string, message: string): OAuthError {
  return new OAuthError('invalid_client', message, 400, url);
}
