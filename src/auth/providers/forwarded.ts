import type { ForwardedProviderConfig } from '../../config/types.js';
import { compileCidrMatcher } from '../../http/peer.js';
import { InvalidCredentialError, type AuthProvider, type AuthRequest, type Identity } from '../types.js';

/**
 * Identity from a trusted reverse proxy's headers on `/mcp` itself (`serverAuth.forwarded`).
 *
 * The user header is a credential ONLY when the TCP peer (`request.peerAddress`, the socket's own
 * address) is inside this provider's own `trustedSourceCidrs`; `X-Forwarded-For` is never read.
 * From any other peer the header is ignored as if absent, so the request is judged on its other
 * credentials (or gets the no-credential 401). An empty CIDR list is refused at construction
 * rather than meaning "trust everyone" (STYLE.md habit 3).
 *
 * Groups: the groups header is split on commas, trimmed, empties and duplicates dropped.
 * A user header with several values (repeated headers, which Node joins with ", ") is rejected:
 * a proxy that sets the user exactly once never produces that, a client smuggling its own does.
 */
export function createForwardedProvider(config: ForwardedProviderConfig): AuthProvider {
  if (!config.trustedSourceCidrs || config.trustedSourceCidrs.length === 0) {
    throw new Error('serverAuth.forwarded.trustedSourceCidrs must list at least one trusted proxy address or CIDR');
  }
  const isTrusted = compileCidrMatcher(config.trustedSourceCidrs);
  // IncomingHttpHeaders keys are lower-case.
  const userHeader = config.userHeader.toLowerCase();
  const groupsHeader = config.groupsHeader.toLowerCase();

  function userValue(request: AuthRequest): string | string[] | undefined {
    const value = request.headers[userHeader];
    if (value === undefined) return undefined;
    if (Array.isArray(value)) return value.length > 0 ? value : undefined;
    return value.trim() === '' ? undefined : value;
  }

  return {
    name: 'forwarded',
    recognizes(request: AuthRequest): boolean {
      return userValue(request) !== undefined && isTrusted(request.peerAddress);
    },
    authenticate(request: AuthRequest): Identity {
      // Re-checked here so a caller that skips recognizes() still cannot be fooled.
      if (!isTrusted(request.peerAddress)) {
        throw new InvalidCredentialError('forwarded', 'user header from an untrusted peer');
      }
      const value = userValue(request);
      if (value === undefined) throw new InvalidCredentialError('forwarded', 'user header missing');
      if (Array.isArray(value) || value.includes(',')) {
        throw new InvalidCredentialError('forwarded', 'user header has several values');
      }
      return { subject: value.trim(), roles: parseGroups(request.headers[groupsHeader]), via: 'forwarded' };
    },
  };
}

/** `"a, b,,c "` → `["a", "b", "c"]`; repeated headers are merged. */
export function parseGroups(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const joined = Array.isArray(value) ? value.join(',') : value;
  const groups = joined.split(',').map((g) => g.trim()).filter((g) => g !== '');
  return [...new Set(groups)];
}
