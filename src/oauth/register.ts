import { createHash } from 'node:crypto';
import type { OAuthAsConfig } from '../config/types.js';
import type { StateStore } from '../store/types.js';
import type { Logger } from '../log.js';
import { hashToken, randomIdentifier, randomToken } from '../crypto/random.js';
import { validateClientRegistration } from '../validation.js';
import { OAuthError } from './errors.js';
import type { ClientRecord, TokenEndpointAuthMethod } from './clients.js';

const AUTH_METHODS: TokenEndpointAuthMethod[] = ['none', 'client_secret_basic', 'client_secret_post'];
const GRANT_TYPES = ['authorization_code', 'refresh_token'];

export interface RegistrationResult {
  status: 201 | 200;
  body: Record<string, unknown>;
}

/**
 * Dynamic Client Registration (RFC 7591). Real clients make it messy, so:
 * - a request whose redirect URIs are only partly allowed registers the allowed ones and says
 *   exactly what was registered (RFC 7591 §3.2.1 lets the server replace values); none allowed is
 *   `invalid_redirect_uri`;
 * - an identical public re-registration (same name, software id and redirect set) returns the
 *   existing client instead of piling up new ones;
 * - registrations are rate-limited per source address and capped in number.
 */
export class Registrar {
  constructor(
    private readonly store: StateStore,
    private readonly config: OAuthAsConfig,
    private readonly redirectAllowed: (uri: string) => boolean,
    private readonly logger: Logger,
  ) {}

  async register(body: unknown, sourceAddress: string, now = Date.now()): Promise<RegistrationResult> {
    const limit = this.config.registration.ratePerMinute;
    const count = await this.store.increment('ratelimit', `register:${sourceAddress}`, 60);
    if (count > limit) {
      throw new OAuthError('temporarily_unavailable', `too many registrations from this address (limit ${limit} per minute)`, 429, undefined, { 'retry-after': '60' });
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new OAuthError('invalid_client_metadata', 'the body must be a JSON object');
    const request = body as Record<string, unknown>;
    const problems = validateClientRegistration(request);
    if (problems.length) {
      const redirectProblem = problems.some((p) => p.startsWith('/redirect_uris') || p.includes('redirect_uris'));
      throw new OAuthError(redirectProblem ? 'invalid_redirect_uri' : 'invalid_client_metadata', problems.join('; '));
    }

    const requestedUris = request.redirect_uris as string[];
    const redirectUris = [...new Set(requestedUris.filter((uri) => this.redirectAllowed(uri)))];
    const refused = requestedUris.filter((uri) => !redirectUris.includes(uri));
    if (redirectUris.length === 0) {
      throw new OAuthError('invalid_redirect_uri', `no redirect URI is allowed by this gateway (refused: ${refused.join(', ')}); an operator can add them to serverAuth.oauthAs.redirectUriAllowlist`);
    }

    const grantTypes = request.grant_types as string[];
    const unsupportedGrant = grantTypes.find((g) => !GRANT_TYPES.includes(g));
    if (unsupportedGrant) throw new OAuthError('invalid_client_metadata', `grant type "${unsupportedGrant}" is not supported (authorization_code and refresh_token only)`);
    const responseTypes = request.response_types as string[];
    if (responseTypes.some((r) => r !== 'code')) throw new OAuthError('invalid_client_metadata', 'only the "code" response type is supported');
    const method = request.token_endpoint_auth_method as TokenEndpointAuthMethod;
    if (!AUTH_METHODS.includes(method)) throw new OAuthError('invalid_client_metadata', `token_endpoint_auth_method "${String(method)}" is not supported (none, client_secret_basic, client_secret_post)`);

    const supported = new Set(this.config.scopesSupported);
    const scope = typeof request.scope === 'string'
      ? request.scope.split(' ').filter((s) => supported.has(s)).join(' ') || undefined
      : undefined;
    const clientName = typeof request.client_name === 'string' ? request.client_name : undefined;
    const softwareId = typeof request.software_id === 'string' ? request.software_id : undefined;

    // One listing serves both the reuse check and the cap (it is a full scan on Redis).
    const clients = (await this.store.list<ClientRecord>('clients')).map((entry) => entry.value);
    if (method === 'none') {
      const existing = findIdentical(clients, clientName, softwareId, redirectUris, scope);
      if (existing) {
        this.logger.info({ clientId: existing.client_id, clientName }, 'identical registration reused');
        return { status: 201, body: publicView(existing) };
      }
    }

    if (clients.length >= this.config.registration.maxClients) {
      throw new OAuthError('temporarily_unavailable', 'the gateway has reached its limit of registered clients; an operator must delete unused ones', 503);
    }

    const secret = method === 'none' ? undefined : randomToken(32);
    const record: ClientRecord = {
      client_id: randomIdentifier(18),
      client_name: clientName,
      client_uri: typeof request.client_uri === 'string' ? request.client_uri : undefined,
      software_id: softwareId,
      software_version: typeof request.software_version === 'string' ? request.software_version : undefined,
      redirect_uris: redirectUris,
      grant_types: grantTypes.length ? [...new Set(grantTypes)] : GRANT_TYPES,
      scope,
      token_endpoint_auth_method: method,
      client_secret_hash: secret ? hashToken(secret) : undefined,
      client_id_issued_at: Math.floor(now / 1000),
      createdAt: now,
      source: 'dcr',
    };
    await this.store.put('clients', record.client_id, record);
    this.logger.info({ clientId: record.client_id, clientName, redirectUris, refused }, 'client registered');
    const response = publicView(record);
    if (secret) Object.assign(response, { client_secret: secret, client_secret_expires_at: 0 });
    return { status: 201, body: response };
  }
}

/** A stored public client registered with the same name, software id, redirect set and scope. */
function findIdentical(clients: ClientRecord[], name: string | undefined, softwareId: string | undefined, redirectUris: string[], scope: string | undefined): ClientRecord | undefined {
  const fingerprint = registrationFingerprint(name, softwareId, redirectUris, scope);
  return clients.find((value) => value.source === 'dcr' && value.token_endpoint_auth_method === 'none'
    && registrationFingerprint(value.client_name, value.software_id, value.redirect_uris, value.scope) === fingerprint);
}

function registrationFingerprint(name: string | undefined, softwareId: string | undefined, redirectUris: string[], scope: string | undefined): string {
  return createHash('sha256').update(JSON.stringify([name ?? null, softwareId ?? null, [...redirectUris].sort(), scope ?? null])).digest('base64url');
}

/** What a client may see of its own registration (RFC 7591 §3.2.1). */
export function publicView(client: ClientRecord): Record<string, unknown> {
  return {
    client_id: client.client_id,
    client_id_issued_at: client.client_id_issued_at,
    ...(client.client_name !== undefined ? { client_name: client.client_name } : {}),
    ...(client.client_uri !== undefined ? { client_uri: client.client_uri } : {}),
    ...(client.software_id !== undefined ? { software_id: client.software_id } : {}),
    ...(client.software_version !== undefined ? { software_version: client.software_version } : {}),
    redirect_uris: client.redirect_uris,
    grant_types: client.grant_types,
    response_types: ['code'],
    token_endpoint_auth_method: client.token_endpoint_auth_method,
    ...(client.scope !== undefined ? { scope: client.scope } : {}),
  };
}
