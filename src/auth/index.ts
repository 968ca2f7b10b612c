import type { ServerAuthConfig } from '../config/types.js';
import type { ChallengeOptions } from './chain.js';
import { createBearerProvider } from './providers/bearer.js';
import { createForwardedProvider } from './providers/forwarded.js';
import type { AuthProvider, Identity } from './types.js';

export { ProviderChain, extractBearer, buildChallenge, type AuthOutcome, type ChallengeOptions } from './chain.js';
export { createBearerProvider } from './providers/bearer.js';
export { createForwardedProvider } from './providers/forwarded.js';
export { InvalidCredentialError, type AuthProvider, type AuthRequest, type Identity } from './types.js';

/** Providers implemented outside this module and handed in by the composition root. */
export type ExternalProviderName = 'oauth_as' | 'jwks';

/**
 * Builds the providers listed in `serverAuth.providers`, in that order. `bearer` and `forwarded`
 * are built here from their config blocks; `oauth_as` and `jwks` come from `extra` (they need the
 * token service / JWKS cache that the composition root owns). A listed provider that has no config
 * block or no implementation throws an Error naming it, so a config can never silently run with
 * less authentication than it lists. `none` yields the anonymous provider and must stand alone.
 */
export function createProviders(
  serverAuth: ServerAuthConfig,
  extra: Partial<Record<ExternalProviderName, AuthProvider>>,
): AuthProvider[] {
  const names = serverAuth.providers;
  if (names.length === 0) throw new Error('serverAuth.providers is empty: list at least one provider, or "none"');
  if (new Set(names).size !== names.length) throw new Error('serverAuth.providers lists a provider twice');
  if (names.includes('none') && names.length > 1) {
    throw new Error('serverAuth.providers: "none" cannot be combined with other providers');
  }
  return names.map((name): AuthProvider => {
    switch (name) {
      case 'none':
        return anonymousProvider();
      case 'bearer':
        if (!serverAuth.bearer) throw new Error('serverAuth.providers lists "bearer" but serverAuth.bearer is missing');
        return createBearerProvider(serverAuth.bearer);
      case 'forwarded':
        if (!serverAuth.forwarded) throw new Error('serverAuth.providers lists "forwarded" but serverAuth.forwarded is missing');
        return createForwardedProvider(serverAuth.forwarded);
      case 'oauth_as':
      case 'jwks': {
        const provider = extra[name];
        if (!provider) throw new Error(`serverAuth.providers lists "${name}" but no "${name}" provider implementation was supplied`);
        return provider;
      }
      default:
        throw new Error(`serverAuth.providers: unknown provider "${String(name)}"`);
    }
  });
}

/** `none`: every request is `anonymous` with no roles. Only ever the sole provider. */
function anonymousProvider(): AuthProvider {
  return {
    name: 'none',
    recognizes: () => true,
    authenticate: (): Identity => ({ subject: 'anonymous', roles: [], via: 'none' }),
  };
}

/**
 * The 401 challenge parameters for this auth config (DESIGN.md §5). `resource_metadata` points at
 * the RFC 9728 document this gateway serves for `/mcp`, which exists when our own AS (`oauth_as`)
 * is configured: `<issuerUrl>/.well-known/oauth-protected-resource/mcp`. With `jwks` alone there
 * is no issuer URL of our own to build it from, so it is left out. `scope` lists
 * `oauthAs.scopesSupported`.
 */
export function challengeFor(serverAuth: ServerAuthConfig): ChallengeOptions {
  const oauthAs = serverAuth.providers.includes('oauth_as') ? serverAuth.oauthAs : undefined;
  if (!oauthAs) return {};
  const issuer = oauthAs.issuerUrl.replace(/\/+$/, '');
  const challenge: ChallengeOptions = { resourceMetadataUrl: `${issuer}/.well-known/oauth-protected-resource/mcp` };
  if (oauthAs.scopesSupported && oauthAs.scopesSupported.length > 0) challenge.scopes = [...oauthAs.scopesSupported];
  return challenge;
}
