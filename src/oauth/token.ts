import type { IncomingMessage } from 'node:http';
import type { OAuthAsConfig } from '../config/types.js';
import { StoreUnavailableError, type SessionRecord, type StateStore } from '../store/types.js';
import type { Logger } from '../log.js';
import { hashToken } from '../crypto/random.js';
import { OAuthError, invalidGrant, invalidRequest } from './errors.js';
import { isValidCodeVerifier, verifyPkceS256 } from './pkce.js';
import { resolveResource } from './resource.js';
import { newSid, type RefreshTokens } from './refresh-token.js';
import type { AccessTokens } from './tokens.js';
import type { CodeRecord } from './authorize.js';
import type { ClientRecord, ClientRegistry } from './clients.js';

export interface TokenDeps {
  config: OAuthAsConfig;
  store: StateStore;
  clients: ClientRegistry;
  accessTokens: AccessTokens;
  refreshTokens: RefreshTokens;
  logger: Logger;
  audit: Logger;
  /**
   * Counts outcomes (metrics); optional. `grant` is `authorization_code`, `refresh_token`,
   * `unsupported` (missing or other grant_type) or `revocation`; `outcome` is a fixed word (see
   * `outcomeOf`), never a value from the request.
   */
  onOutcome?: (grant: string, outcome: string) => void;
}

const OUTCOME = Symbol('token outcome');

/** Marks an error with the outcome it stands for (`reuse`, `replay`), for the metrics. */
function tagged<E extends Error>(error: E, outcome: string): E {
  (error as E & { [OUTCOME]?: string })[OUTCOME] = outcome;
  return error;
}

/** The outcome word of a failed request: a tag, `invalid` for invalid_grant, the OAuth error code, `unavailable` or `error`. */
function outcomeOf(error: unknown): string {
  const tag = (error as { [OUTCOME]?: string } | undefined)?.[OUTCOME];
  if (tag) return tag;
  if (error instanceof OAuthError) return error.code === 'invalid_grant' ? 'invalid' : error.code;
  if (error instanceof StoreUnavailableError) return 'unavailable';
  return 'error';
}

/** Remembers, for a while after a code was used, which session it created, to revoke it on replay. */
interface CodeUse {
  sid: string;
}

const CODE_USE_MEMORY_SECONDS = 600;

/**
 * The token endpoint (RFC 6749 §3.2, OAuth 2.1): `authorization_code` with PKCE S256 and
 * `refresh_token` with rotation. Refresh tokens are derived from their family (`sid`) and
 * generation, so the store keeps no token at all; the store's atomic rotation decides between a
 * fresh successor, the same successor within the grace window, and revoking the family on reuse.
 */
export class TokenEndpoint {
  constructor(private readonly deps: TokenDeps) {}

  async handle(req: IncomingMessage, form: Map<string, string>): Promise<Record<string, unknown>> {
    const grantType = form.get('grant_type');
    const grant = grantType === 'authorization_code' || grantType === 'refresh_token' ? grantType : 'unsupported';
    try {
      if (!grantType) throw invalidRequest('grant_type is required');
      if (grant === 'unsupported') throw new OAuthError('unsupported_grant_type', `grant_type "${grantType}" is not supported`);
      // The refresh family is read while the client is authenticated (one round trip to a shared
      // store instead of two); nothing about it is looked at before the client is.
      const family = grant === 'refresh_token' ? this.readFamily(form) : undefined;
      family?.catch(() => {});
      const client = await this.deps.clients.authenticate(req, form);
      if (!client.grant_types.includes(grant)) throw new OAuthError('unauthorized_client', `this client may not use the ${grant} grant`);
      const { body, outcome } = grant === 'authorization_code' ? await this.authorizationCode(client, form) : await this.refresh(client, form, family!);
      this.deps.onOutcome?.(grant, outcome);
      return body;
    } catch (error) {
      this.deps.onOutcome?.(grant, outcomeOf(error));
      throw error;
    }
  }

  private async authorizationCode(client: ClientRecord, form: Map<string, string>): Promise<{ body: Record<string, unknown>; outcome: string }> {
    const { store, config } = this.deps;
    const code = form.get('code');
    if (!code) throw invalidRequest('code is required');
    const codeHash = hashToken(code);
    const record = await store.takeOnce<CodeRecord>('codes', codeHash);
    if (!record) {
      // A second use of a code revokes what its first use issued (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3).
      const use = await store.get<CodeUse>('codeUses', codeHash);
      if (use) {
        await store.delete('sessions', use.sid);
        this.deps.audit.warn({ event: 'token', grant: 'authorization_code', decision: 'deny', outcome: 'replay', clientId: client.client_id, reason: 'code replay', sid: use.sid }, 'authorization code replayed: its tokens were revoked');
        throw tagged(invalidGrant('the authorization code is invalid, expired or already used'), 'replay');
      }
      throw invalidGrant('the authorization code is invalid, expired or already used');
    }
    if (record.clientId !== client.client_id) throw invalidGrant('the authorization code was issued to another client');
    // RFC 6749 §4.1.3: required, and identical, when the authorization request included it; a
    // request that omitted it (the client's only registered URI was used) may omit it here too.
    const redirectUri = form.get('redirect_uri') ?? (record.redirectUriInRequest === false ? record.redirectUri : undefined);
    if (redirectUri !== record.redirectUri) {
      throw invalidGrant('redirect_uri does not match the authorization request');
    }
    const verifier = form.get('code_verifier');
    if (!isValidCodeVerifier(verifier)) throw invalidGrant('code_verifier is missing or malformed (43-128 unreserved characters)');
    if (!verifyPkceS256(verifier, record.codeChallenge)) throw invalidGrant('code_verifier does not match the code_challenge');
    const resourceParam = form.get('resource');
    if (resourceParam !== undefined && resolveResource(resourceParam, config.issuerUrl) !== record.resource) {
      throw new OAuthError('invalid_target', 'resource does not match the authorization request');
    }

    const now = Date.now();
    const session: SessionRecord = {
      sid: newSid(),
      clientId: client.client_id,
      subject: record.subject,
      groups: record.groups,
      scope: record.scope,
      resource: record.resource,
      generation: 0,
      rotatedAt: now,
      createdAt: now,
      lastUsedAt: now,
      idleExpiresAt: Math.min(now + config.refreshTokenTtlSeconds * 1000, now + config.sessionMaxLifetimeSeconds * 1000),
      absoluteExpiresAt: now + config.sessionMaxLifetimeSeconds * 1000,
    };
    await store.put('sessions', session.sid, session, config.sessionMaxLifetimeSeconds);
    await store.put<CodeUse>('codeUses', codeHash, { sid: session.sid }, CODE_USE_MEMORY_SECONDS);
    await this.deps.clients.touch(client, now);
    this.deps.audit.info({ event: 'token', grant: 'authorization_code', decision: 'allow', outcome: 'issued', clientId: client.client_id, subject: session.subject, sid: session.sid }, 'tokens issued');
    return { body: await this.respond(session, session.scope, session.generation), outcome: 'issued' };
  }

  /** The presented refresh token's family: the parsed token and its stored session, if any. */
  private async readFamily(form: Map<string, string>): Promise<{ parsed: { sid: string; generation: number }; current: SessionRecord | undefined }> {
    const token = form.get('refresh_token');
    if (!token) throw invalidRequest('refresh_token is required');
    const parsed = this.deps.refreshTokens.parse(token);
    if (!parsed) throw invalidGrant('the refresh token is invalid');
    return { parsed, current: await this.deps.store.get<SessionRecord>('sessions', parsed.sid) };
  }

  private async refresh(client: ClientRecord, form: Map<string, string>, family: ReturnType<TokenEndpoint['readFamily']>): Promise<{ body: Record<string, unknown>; outcome: string }> {
    const { store, config } = this.deps;
    const { parsed, current } = await family;
    if (!current) throw invalidGrant('the refresh token is invalid, expired or revoked');
    if (current.clientId !== client.client_id) throw invalidGrant('the refresh token was issued to another client');
    const resourceParam = form.get('resource');
    if (resourceParam !== undefined && resolveResource(resourceParam, config.issuerUrl) !== current.resource) {
      throw new OAuthError('invalid_target', 'resource does not match the original authorization');
    }
    const requestedScope = form.get('scope');
    const granted = current.scope.split(' ').filter(Boolean);
    const scope = requestedScope === undefined ? granted : requestedScope.split(' ').filter(Boolean);
    const wider = scope.find((s) => !granted.includes(s));
    if (wider) throw new OAuthError('invalid_scope', `scope "${wider}" was not granted originally`);

    const result = await store.rotateRefresh({
      sid: parsed.sid,
      presentedGeneration: parsed.generation,
      now: Date.now(),
      graceMs: config.refreshGraceSeconds * 1000,
      idleTtlMs: config.refreshTokenTtlSeconds * 1000,
    });
    switch (result.status) {
      case 'rotated':
      case 'grace':
        await this.deps.clients.touch(client);
        this.deps.audit.info({ event: 'token', grant: 'refresh_token', decision: 'allow', outcome: result.status, clientId: client.client_id, subject: result.session.subject, sid: result.session.sid, rotation: result.status }, 'tokens refreshed');
        return { body: await this.respond(result.session, scope.join(' '), result.session.generation), outcome: result.status };
      case 'reuse':
        this.deps.audit.warn({ event: 'token', grant: 'refresh_token', decision: 'deny', outcome: 'reuse', clientId: client.client_id, subject: result.session.subject, sid: result.session.sid, reason: 'refresh token reuse' }, 'an old refresh token was reused: the whole family was revoked');
        throw tagged(invalidGrant('the refresh token was already used; the session has been revoked'), 'reuse');
      default:
        throw invalidGrant('the refresh token is invalid, expired or revoked');
    }
  }

  private async respond(session: SessionRecord, scope: string, generation: number): Promise<Record<string, unknown>> {
    const groups = [...new Set([...session.groups, ...this.deps.config.injectedRoles])];
    const access = await this.deps.accessTokens.sign({ sub: session.subject, client_id: session.clientId, groups, scope, sid: session.sid });
    return {
      access_token: access.token,
      token_type: 'Bearer',
      expires_in: access.expiresIn,
      refresh_token: this.deps.refreshTokens.mint(session.sid, generation),
      scope,
    };
  }
}

/**
 * Token revocation (RFC 7009): a refresh token revokes its family; an access token revokes the
 * family it belongs to. Unknown or already-revoked tokens are not an error (200), so the endpoint
 * reveals nothing; only the client that owns a token may revoke it.
 */
export class RevocationEndpoint {
  constructor(private readonly deps: TokenDeps) {}

  async handle(req: IncomingMessage, form: Map<string, string>): Promise<void> {
    let outcome = 'not_found';
    try {
      outcome = await this.revoke(req, form);
    } catch (error) {
      outcome = outcomeOf(error);
      throw error;
    } finally {
      this.deps.onOutcome?.('revocation', outcome);
    }
  }

  /** Returns `revoked`, or `not_found` for a token that names no live session of this client. */
  private async revoke(req: IncomingMessage, form: Map<string, string>): Promise<string> {
    const client = await this.deps.clients.authenticate(req, form);
    const token = form.get('token');
    if (!token) throw invalidRequest('token is required');
    // token_type_hint is only a hint (RFC 7009 §2.1: a wrong one must not stop the search); the two
    // formats cannot be confused, so both are always tried.
    let sid: string | undefined;
    const refresh = this.deps.refreshTokens.parse(token);
    if (refresh) sid = refresh.sid;
    else if (this.deps.accessTokens.isOurs(token)) {
      try {
        sid = (await this.deps.accessTokens.verify(token)).sid;
      } catch {
        sid = undefined; // expired or invalid: nothing to revoke
      }
    }
    if (!sid) return 'not_found';
    const session = await this.deps.store.get<SessionRecord>('sessions', sid);
    if (!session || session.clientId !== client.client_id) return 'not_found';
    await this.deps.store.delete('sessions', sid);
    this.deps.audit.info({ event: 'revoke', decision: 'allow', outcome: 'revoked', clientId: client.client_id, subject: session.subject, sid }, 'session revoked');
    return 'revoked';
  }
}
