import type { IncomingHttpHeaders } from 'node:http';
import { COMPACT_JWS_PATTERN, InvalidCredentialError, type AuthProvider, type AuthRequest, type Identity } from './types.js';

/**
 * The ProviderChain: who is calling `/mcp` (and the admin API), decided by the configured providers.
 *
 * Contract (DESIGN.md §6; tested as a table in test/unit/chain.test.ts):
 *
 * 1. The bearer token is taken from `Authorization: Bearer <token>` only (RFC 6750 §2.1). A token
 *    in the query string (`access_token`) or in a form body is never read. Any `bearer` already
 *    set on the incoming `AuthRequest` is overwritten by what the header says.
 * 2. Providers run in configured order. The first one whose `recognizes()` is true is asked to
 *    `authenticate()`; the providers after it are never consulted for this request.
 * 3. `authenticate()` returns an identity → the request is authenticated as that identity (the
 *    first provider that accepts wins).
 * 4. `authenticate()` throws (`InvalidCredentialError`, or anything else: fail closed) → 401 with
 *    `error="invalid_token"`. The chain stops: a credential that one provider claimed and rejected
 *    is never retried against a weaker provider.
 * 5. No provider recognises the request → 401:
 *    - a bearer token was presented → `error="invalid_token"`, description "token not recognised";
 *    - the `Authorization` header is present but not a well-formed Bearer credential (`Basic`,
 *      empty token, several tokens) → `error="invalid_request"`;
 *    - no credential at all → no `error` parameter (RFC 6750 §3.1: a request that lacks
 *      authentication information gets a bare challenge).
 *    A malformed header only counts when no provider recognises the request, so the anonymous
 *    provider (`none`) and a trusted `forwarded` identity are not defeated by an unrelated
 *    `Authorization: Basic` header. The status stays 401 (not RFC 6750's 400 for
 *    `invalid_request`) because MCP clients start their authorization discovery from a 401.
 * 6. Every 401 carries `WWW-Authenticate: Bearer` with, in this order and only when applicable,
 *    `resource_metadata="<url>"` (RFC 9728 §5.1; set by the caller whenever an OAuth provider is
 *    configured), `scope="a b"`, `error="..."`, `error_description="..."`, values quoted with `"`
 *    and `\` escaped.
 *
 * `description` is safe to send to the client and never contains the credential; `reason` is the
 * private detail for the audit log. The chain knows no provider by name: `oauth_as`, `jwks` and any
 * later provider plug in through the `AuthProvider` interface alone.
 */

/** Options for the `WWW-Authenticate` challenge on a 401. */
export interface ChallengeOptions {
  /** RFC 9728 protected-resource metadata URL, advertised as `resource_metadata`. */
  resourceMetadataUrl?: string;
  /** Scopes a client should request, advertised as `scope` (RFC 6750 §3). */
  scopes?: string[];
}

/** What the chain decided. A failure carries everything the HTTP layer needs to write the 401. */
export type AuthOutcome =
  | { ok: true; identity: Identity }
  | {
      ok: false;
      status: 401;
      /** The full `WWW-Authenticate` header value. */
      wwwAuthenticate: string;
      /** RFC 6750 §3.1 error code, absent when the request carried no credential. */
      error?: 'invalid_token' | 'invalid_request';
      /** Safe to send to the client (never contains the credential). */
      description: string;
      /** Private detail for the audit log. */
      reason: string;
      /** The provider that recognised and rejected the credential, if any. */
      provider?: string;
    };

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token. Node has already trimmed the header value.
// The first alternative is a compact JWS (a subset of b64token): one scan of a ~1 KB access token
// tells both, so providers need not scan it again.
const BEARER = new RegExp(`^Bearer +(?:(${COMPACT_JWS_PATTERN})|([A-Za-z0-9\\-._~+/]+=*))$`, 'i');
const SCHEME = /^[A-Za-z][A-Za-z0-9!#$%&'*+\-.^_`|~]*(?: |$)/;

/**
 * Reads `Authorization: Bearer <token>` (scheme case-insensitive, exactly one token in RFC 6750
 * `b64token` syntax). A present `Authorization` header that is anything else (another scheme,
 * an empty token, two tokens, repeated headers) is `malformed`. Never looks at the query string.
 */
export function extractBearer(headers: IncomingHttpHeaders): { token?: string; compactJws?: boolean; malformed: boolean } {
  const value: unknown = headers.authorization;
  if (value === undefined) return { malformed: false };
  if (typeof value !== 'string') return { malformed: true };
  const match = BEARER.exec(value);
  if (!match) return { malformed: true };
  return match[1] !== undefined ? { token: match[1], compactJws: true, malformed: false } : { token: match[2], compactJws: false, malformed: false };
}

/**
 * Quotes a challenge parameter value (RFC 9110 §5.6.4 quoted-string). Our own descriptions avoid
 * `"` and `\` altogether (RFC 6750 §3 excludes them from `error_description`); escaping covers
 * configured values such as the metadata URL and scopes.
 */
function quote(value: string): string {
  // Control and non-ASCII characters have no place in a header value; replace rather than fail.
  const printable = value.replace(/[^\x20-\x7e]/g, '?');
  return `"${printable.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Builds the `WWW-Authenticate` value for a 401 (exported for the HTTP layer's 403/insufficient_scope reuse). */
export function buildChallenge(
  challenge: ChallengeOptions,
  error?: string,
  description?: string,
): string {
  const params: string[] = [];
  if (challenge.resourceMetadataUrl) params.push(`resource_metadata=${quote(challenge.resourceMetadataUrl)}`);
  if (challenge.scopes && challenge.scopes.length > 0) params.push(`scope=${quote(challenge.scopes.join(' '))}`);
  if (error) {
    params.push(`error=${quote(error)}`);
    if (description) params.push(`error_description=${quote(description)}`);
  }
  return params.length > 0 ? `Bearer ${params.join(', ')}` : 'Bearer';
}

/** Runs the configured providers in order; see the contract at the top of this file. */
export class ProviderChain {
  readonly #providers: readonly AuthProvider[];
  readonly #challenge: ChallengeOptions;

  constructor(providers: AuthProvider[], challenge: ChallengeOptions) {
    if (providers.length === 0) throw new Error('ProviderChain needs at least one provider (use "none" for no authentication)');
    this.#providers = [...providers];
    this.#challenge = { ...challenge, scopes: challenge.scopes ? [...challenge.scopes] : undefined };
  }

  /** Provider names in the order they are tried. */
  get providerNames(): string[] {
    return this.#providers.map((p) => p.name);
  }

  async authenticate(request: AuthRequest): Promise<AuthOutcome> {
    const { token, compactJws, malformed } = extractBearer(request.headers);
    const scoped: AuthRequest = { headers: request.headers, peerAddress: request.peerAddress, bearer: token, bearerIsCompactJws: compactJws };

    for (const provider of this.#providers) {
      let recognised: boolean;
      try {
        recognised = provider.recognizes(scoped);
      } catch (err) {
        // A provider that cannot even tell whether the credential is its own fails closed.
        return this.#reject(provider.name, `recognizes() threw: ${errorMessage(err)}`);
      }
      if (!recognised) continue;
      try {
        const identity = await provider.authenticate(scoped);
        if (!identity || typeof identity.subject !== 'string' || identity.subject === '' || !Array.isArray(identity.roles)) {
          return this.#reject(provider.name, 'provider returned an identity without a subject or roles');
        }
        return { ok: true, identity };
      } catch (err) {
        if (err instanceof InvalidCredentialError) return this.#reject(provider.name, err.reason);
        return this.#reject(provider.name, `provider error: ${errorMessage(err)}`, 'token could not be verified');
      }
    }

    if (token !== undefined) {
      return this.#fail('invalid_token', 'token not recognised', 'no provider recognised the bearer token');
    }
    if (malformed) {
      return this.#fail(
        'invalid_request',
        'Authorization header must be the Bearer scheme with one token',
        `malformed Authorization header (scheme: ${schemeOf(request.headers.authorization)})`,
      );
    }
    return this.#fail(undefined, 'authentication required', 'no credential presented');
  }

  #reject(provider: string, reason: string, description = 'token rejected'): AuthOutcome {
    return { ...this.#fail('invalid_token', description, reason), provider };
  }

  #fail(error: 'invalid_token' | 'invalid_request' | undefined, description: string, reason: string) {
    const wwwAuthenticate = buildChallenge(this.#challenge, error, error ? description : undefined);
    const outcome = { ok: false as const, status: 401 as const, wwwAuthenticate, description, reason };
    return error ? { ...outcome, error } : outcome;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The scheme word of an Authorization header, for the audit log only (never the credential). */
function schemeOf(value: unknown): string {
  if (typeof value !== 'string') return Array.isArray(value) ? 'repeated header' : 'none';
  const match = SCHEME.exec(value);
  return match ? match[0].trim() : 'unparseable';
}
