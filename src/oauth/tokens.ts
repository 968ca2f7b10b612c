/**
 * Our own access tokens (DESIGN.md §6): HS256 JWTs with header `{ alg: 'HS256', typ: 'at+jwt' }`.
 *
 * This is the ONLY module that imports the JWT library (jose). Everything else, including the
 * `oauth_as` provider, goes through `AccessTokens`, which pins the key, the algorithm, the issuer,
 * the audience, the type and the clock skew in one place.
 *
 * Claims: `iss` (issuer URL), `aud` (the resource `<issuerUrl>/mcp`), `sub`, `client_id`, `groups`,
 * `scope`, `sid` (the refresh-token family), `iat`, `nbf`, `exp`, `jti` (random, 128 bits).
 *
 * Verification refuses anything that is not exactly that: another algorithm (`none`, RS256/ES256,
 * HS384...), another key, another issuer, audience or `typ`, a token expired for more than the
 * allowed skew (30 s) or not yet valid, and a token missing a claim or carrying one of the wrong type.
 *
 * Signing is a plain HMAC-SHA-256 over the compact JWS signing input (RFC 7515 §5.1) with a key
 * object made once: jose signs through WebCrypto's asynchronous job queue, which cost about 50 µs
 * per token, a tenth of a whole refresh grant. Verification stays with jose.
 *
 * Hot path: a successfully verified token is remembered (bounded map keyed by the token string) until
 * its `exp`, so a token costs one HMAC check for its whole life. Only successes are cached: a token
 * that failed is verified again each time (failures are cheap and must never become sticky).
 */
import { createHmac, createSecretKey, webcrypto, type KeyObject } from 'node:crypto';
import { jwtVerify, errors as joseErrors } from 'jose';
import { InvalidCredentialError } from '../auth/types.js';
import { randomToken } from '../crypto/random.js';

export interface AccessTokenClaims {
  sub: string;
  client_id: string;
  groups: string[];
  scope: string;
  sid: string;
}

export interface VerifiedAccessToken extends AccessTokenClaims {
  iss: string;
  aud: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
}

export interface AccessTokensOptions {
  /** The HMAC key (≥ 32 bytes), e.g. from `resolveJwtSecret`. */
  secret: Uint8Array;
  /** `iss`: the issuer URL, exactly as advertised in the AS metadata. */
  issuer: string;
  /** `aud`: the canonical resource, `<issuerUrl>/mcp`. */
  audience: string;
  ttlSeconds: number;
  /** Milliseconds since the epoch; injectable for tests. */
  clock?: () => number;
  /** Size bound of the verified-token cache (default 10,000). */
  cacheSize?: number;
}

const PROVIDER = 'oauth_as';
const ALG = 'HS256';
const TYP = 'at+jwt';
/** Allowed clock skew between replicas and clients, in seconds. */
export const CLOCK_TOLERANCE_SECONDS = 30;
/** Longest token `isOurs` / `verify` will look at; ours are well under 2 KB. */
const MAX_TOKEN_LENGTH = 8192;
const PROTECTED_HEADER = Buffer.from(JSON.stringify({ alg: ALG, typ: TYP }), 'utf8').toString('base64url');
const REQUIRED_CLAIMS = ['iss', 'aud', 'sub', 'iat', 'nbf', 'exp', 'jti', 'client_id', 'groups', 'scope', 'sid'];

interface CacheEntry {
  claims: VerifiedAccessToken;
  /** ms since epoch after which the entry is no longer served. */
  expiresAt: number;
}

export class AccessTokens {
  readonly issuer: string;
  readonly audience: string;
  readonly ttlSeconds: number;
  private readonly key: Promise<webcrypto.CryptoKey>;
  private readonly signingKey: KeyObject;
  private readonly clock: () => number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly cacheSize: number;

  constructor(options: AccessTokensOptions) {
    if (!(options.secret instanceof Uint8Array) || options.secret.byteLength < 32) {
      throw new Error('AccessTokens: the signing secret must be at least 32 bytes');
    }
    if (!Number.isSafeInteger(options.ttlSeconds) || options.ttlSeconds <= 0) {
      throw new Error('AccessTokens: ttlSeconds must be a positive integer');
    }
    if (!options.issuer || !options.audience) throw new Error('AccessTokens: issuer and audience are required');
    this.issuer = options.issuer;
    this.audience = options.audience;
    this.ttlSeconds = options.ttlSeconds;
    this.clock = options.clock ?? Date.now;
    this.cacheSize = options.cacheSize ?? 10_000;
    // Imported once, as a non-extractable HMAC-SHA-256 key for jose's HS256 verification only.
    // (Handing jose the raw bytes would re-import the key on every call.)
    this.key = webcrypto.subtle.importKey(
      'raw',
      new Uint8Array(options.secret),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['verify'],
    );
    // Never an unhandled rejection; the error resurfaces on first use.
    this.key.catch(() => undefined);
    this.signingKey = createSecretKey(Buffer.from(options.secret));
  }

  async sign(claims: AccessTokenClaims): Promise<{ token: string; expiresIn: number; jti: string }> {
    const now = Math.floor(this.clock() / 1000);
    const jti = randomToken(16);
    const payload = {
      client_id: claims.client_id,
      groups: [...claims.groups],
      scope: claims.scope,
      sid: claims.sid,
      iss: this.issuer,
      aud: this.audience,
      sub: claims.sub,
      iat: now,
      nbf: now,
      exp: now + this.ttlSeconds,
      jti,
    };
    const input = `${PROTECTED_HEADER}.${Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url')}`;
    const signature = createHmac('sha256', this.signingKey).update(input, 'utf8').digest('base64url');
    return { token: `${input}.${signature}`, expiresIn: this.ttlSeconds, jti };
  }

  /**
   * Verifies one of our access tokens and returns its claims (frozen, and the same object for as
   * long as the token stays cached, so callers may key caches on it), or throws
   * `InvalidCredentialError('oauth_as', reason)`. `reason` is for the audit log and never contains
   * the token.
   */
  async verify(token: string): Promise<VerifiedAccessToken> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      throw new InvalidCredentialError(PROVIDER, 'malformed token');
    }
    const nowMs = this.clock();
    const cached = this.cache.get(token);
    if (cached) {
      if (nowMs < cached.expiresAt) return cached.claims;
      this.cache.delete(token);
    }

    let payload: Record<string, unknown>;
    try {
      const result = await jwtVerify(token, await this.key, {
        algorithms: [ALG],
        issuer: this.issuer,
        audience: this.audience,
        typ: TYP,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: new Date(nowMs),
        requiredClaims: REQUIRED_CLAIMS,
      });
      payload = result.payload as Record<string, unknown>;
    } catch (error) {
      throw new InvalidCredentialError(PROVIDER, reasonFor(error));
    }

    const claims = checkClaimTypes(payload);
    if (!claims) throw new InvalidCredentialError(PROVIDER, 'a claim has the wrong type');
    Object.freeze(claims.groups);
    Object.freeze(claims);
    this.remember(token, claims, nowMs);
    return claims;
  }

  /**
   * Cheap and unverified: a compact JWS whose protected header says `typ: at+jwt` and `alg: HS256`
   * and whose payload's `iss` is our issuer. Used by the provider chain to decide whether a bearer
   * token is ours to judge. Never throws.
   */
  isOurs(token: string): boolean {
    try {
      if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return false;
      if (this.cache.has(token)) return true; // verified before: ours (expiry is verify's business)
      const parts = token.split('.');
      if (parts.length !== 3) return false;
      const [header, payload] = parts as [string, string, string];
      if (!B64URL.test(header) || !B64URL.test(payload)) return false;
      const h = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as unknown;
      if (!isRecord(h) || h.alg !== ALG || typeof h.typ !== 'string' || normalizeTyp(h.typ) !== TYP) return false;
      const p = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as unknown;
      return isRecord(p) && p.iss === this.issuer;
    } catch {
      return false;
    }
  }

  /** Entries currently cached (for tests and metrics). */
  get cachedCount(): number {
    return this.cache.size;
  }

  private remember(token: string, claims: VerifiedAccessToken, nowMs: number): void {
    const expiresAt = claims.exp * 1000;
    if (expiresAt <= nowMs) return; // accepted only thanks to the skew: do not cache
    if (this.cache.size >= this.cacheSize) {
      // Drop expired entries first; if none, the oldest insertion (Map keeps insertion order).
      for (const [key, entry] of this.cache) {
        if (entry.expiresAt <= nowMs) this.cache.delete(key);
      }
      while (this.cache.size >= this.cacheSize) {
        const oldest = this.cache.keys().next();
        if (oldest.done) break;
        this.cache.delete(oldest.value);
      }
    }
    this.cache.set(token, { claims, expiresAt });
  }
}

const B64URL = /^[A-Za-z0-9_-]+$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function normalizeTyp(value: string): string {
  const lower = value.toLowerCase();
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower;
}

function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function checkClaimTypes(p: Record<string, unknown>): VerifiedAccessToken | undefined {
  const { iss, aud, sub, client_id, groups, scope, sid, iat, nbf, exp, jti } = p;
  if (typeof iss !== 'string' || typeof aud !== 'string') return undefined;
  if (typeof sub !== 'string' || sub === '') return undefined;
  if (typeof client_id !== 'string' || client_id === '') return undefined;
  if (typeof sid !== 'string' || sid === '') return undefined;
  if (typeof jti !== 'string' || jti === '') return undefined;
  if (typeof scope !== 'string') return undefined;
  if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string')) return undefined;
  if (!isNumericDate(iat) || !isNumericDate(nbf) || !isNumericDate(exp)) return undefined;
  return { iss, aud, sub, client_id, groups: [...(groups as string[])], scope, sid, iat, nbf, exp, jti };
}

/** An audit-log reason for a jose failure: the error code and claim, never the token. */
function reasonFor(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'token expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return `missing claim "${error.claim}"`;
    if (error.claim === 'nbf') return 'token not yet valid';
    return `unexpected "${error.claim}"`;
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad signature';
  if (error instanceof joseErrors.JWSInvalid || error instanceof joseErrors.JWTInvalid) return 'malformed token';
  if (error instanceof joseErrors.JOSEError) return `rejected (${error.code})`;
  return 'verification failed';
}
