import type { IncomingHttpHeaders } from 'node:http';

/** Who is calling, as established by the ProviderChain. Never carries the credential itself. */
export interface Identity {
  subject: string;
  roles: string[];
  clientId?: string;
  scopes?: string[];
  /** Name of the provider that accepted the credential. */
  via: string;
}

/**
 * Freezes an identity and its lists. Providers hand out one identity per credential (a verified
 * token, a configured static token), so later stages may key caches on the object itself; frozen,
 * no stage can change what another sees.
 */
export function freezeIdentity(identity: Identity): Identity {
  Object.freeze(identity.roles);
  if (identity.scopes) Object.freeze(identity.scopes);
  return Object.freeze(identity);
}

/** Whether `identity` is one a provider shares across requests (frozen by `freezeIdentity`). */
export function isSharedIdentity(identity: { roles: readonly string[] }): boolean {
  return Object.isFrozen(identity) && Object.isFrozen(identity.roles);
}

/**
 * A value derived from an identity, kept with it when the identity is shared; computed afresh for
 * any other (which a later stage could change). `compute` learns which case it is in.
 */
export function perIdentity<I extends { roles: readonly string[] }, T>(compute: (identity: I, shared: boolean) => T): (identity: I) => T {
  const values = new WeakMap<I, T>();
  return (identity) => {
    let value = values.get(identity);
    if (value === undefined) {
      const shared = isSharedIdentity(identity);
      value = compute(identity, shared);
      if (shared) values.set(identity, value);
    }
    return value;
  };
}

/** A compact JWS, as regex source: three base64url segments, the last (the signature) possibly empty. */
export const COMPACT_JWS_PATTERN = '[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*';

/** What a provider may look at. `bearer` is the token from `Authorization: Bearer`, if any. */
export interface AuthRequest {
  headers: IncomingHttpHeaders;
  /** Normalised TCP peer address (IPv4-mapped IPv6 already unwrapped). */
  peerAddress: string;
  bearer?: string;
  /** Whether `bearer` has the compact JWS shape (three base64url segments), as the chain read it. */
  bearerIsCompactJws?: boolean;
}

/**
 * A link in the ProviderChain. `recognizes` is cheap and side-effect free: it says whether the
 * request carries a credential of this provider's kind. `authenticate` is only called when it does,
 * and either returns an identity or throws `InvalidCredentialError`; the chain then stops (a
 * recognised but rejected credential is never retried against weaker providers).
 */
export interface AuthProvider {
  readonly name: string;
  recognizes(request: AuthRequest): boolean;
  authenticate(request: AuthRequest): Promise<Identity> | Identity;
}

/** Thrown by a provider that recognised a credential and rejected it. `reason` goes to the audit log only. */
export class InvalidCredentialError extends Error {
  constructor(readonly provider: string, readonly reason: string) {
    super(`${provider}: ${reason}`);
    this.name = 'InvalidCredentialError';
  }
}
