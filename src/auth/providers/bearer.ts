import { digestsEqual, secretDigest } from '../../crypto/compare.js';
import { boundedMemo } from '../../memo.js';
import type { BearerProviderConfig, BearerTokenGrant } from '../../config/types.js';
import { COMPACT_JWS_PATTERN, InvalidCredentialError, freezeIdentity, type AuthProvider, type AuthRequest, type Identity } from '../types.js';

/**
 * Static bearer tokens from `serverAuth.bearer.tokens` (token → subject + roles).
 *
 * Which requests are ours (`recognizes`): a bearer token that is one of the configured tokens, or
 * that is NOT shaped like a compact JWT. JWT-shaped tokens that are not configured fall through to
 * the JWT providers (`oauth_as`, `jwks`) later in the chain; any other unknown token is claimed
 * here and rejected, so it gets a 401 `invalid_token` instead of wandering down the chain.
 *
 * Every presented token is compared in constant time (its digest against the digest of EVERY
 * configured token, computed once at start), with no early exit and no lookup keyed by the token
 * value, so response time says nothing about which token (or which prefix) came close.
 */
export function createBearerProvider(config: BearerProviderConfig): AuthProvider {
  const grants: ReadonlyArray<readonly [string, BearerTokenGrant]> = Object.entries(config.tokens);
  for (const [token, grant] of grants) {
    if (token === '') throw new Error('serverAuth.bearer.tokens: an empty token is not allowed');
    if (!grant || typeof grant.subject !== 'string' || grant.subject === '') {
      throw new Error('serverAuth.bearer.tokens: every token needs a non-empty "subject"');
    }
  }

  // One frozen identity per configured token, handed out on every match.
  const digests = grants.map(([token, grant]) => [secretDigest(token), freezeIdentity({ subject: grant.subject, roles: [...(grant.roles ?? [])], via: 'bearer' })] as const);
  // Only then can a JWT-shaped token be one of ours (a fact about the configuration, not the token).
  const someConfiguredTokenIsJwtShaped = grants.some(([token]) => looksLikeJwt(token));

  /** Scans all configured tokens; the loop always runs to the end. */
  function lookup(presented: string): Identity | undefined {
    const digest = secretDigest(presented);
    let found: Identity | undefined;
    for (const [configured, grant] of digests) {
      if (digestsEqual(digest, configured) && found === undefined) found = grant;
    }
    return found;
  }

  return {
    name: 'bearer',
    recognizes(request: AuthRequest): boolean {
      const token = request.bearer;
      if (!token) return false;
      if (!looksLikeJwt(token, request.bearerIsCompactJws)) return true;
      return someConfiguredTokenIsJwtShaped && lookup(token) !== undefined;
    },
    authenticate(request: AuthRequest): Identity {
      const identity = request.bearer ? lookup(request.bearer) : undefined;
      if (!identity) throw new InvalidCredentialError('bearer', 'unknown static token');
      return identity;
    },
  };
}

const COMPACT_JWS = new RegExp(`^${COMPACT_JWS_PATTERN}$`);

/**
 * True for a compact JWS/JWT: three base64url segments (the signature may be empty, as in an
 * unsecured `alg: none` token, which a JWT provider will then refuse) whose first segment decodes
 * to a JSON object with a string `alg`. Only the shape is checked; nothing is verified here.
 * `compactJws` is the shape when the caller has already read it (the chain does, from the header).
 */
export function looksLikeJwt(token: string, compactJws = COMPACT_JWS.test(token)): boolean {
  return compactJws && headerHasAlg(token.slice(0, token.indexOf('.')));
}

/** JOSE headers repeat (one or two per issuer) and hold nothing secret: each is decoded once. */
const headerHasAlg = boundedMemo(decodesToHeaderWithAlg, 256);

function decodesToHeaderWithAlg(header: string): boolean {
  try {
    const decoded: unknown = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
    return typeof decoded === 'object' && decoded !== null && !Array.isArray(decoded)
      && typeof (decoded as { alg?: unknown }).alg === 'string';
  } catch {
    return false;
  }
}
