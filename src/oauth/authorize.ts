import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OAuthAsConfig } from '../config/types.js';
import type { StateStore } from '../store/types.js';
import type { Logger } from '../log.js';
import { normalizePeerAddress } from '../http/peer.js';
import { hashToken, randomToken } from '../crypto/random.js';
import { OAuthError } from './errors.js';
import { readForm, uniqueParams } from './http.js';
import { issuerOf } from './metadata.js';
import { isValidCodeChallenge } from './pkce.js';
import { redirectUriMatchesRegistered } from './redirect-uri.js';
import { resolveResource } from './resource.js';
import { sendConsentPage, sendErrorPage, sendUnknownClientPage } from './pages.js';
import type { ConsentCsrf } from './csrf.js';
import type { ClientRecord, ClientRegistry } from './clients.js';

/** What an authorization code stands for; stored under the code's hash, single use. */
export interface CodeRecord {
  clientId: string;
  redirectUri: string;
  /** False when the request omitted redirect_uri (one registered URI was used); absent means true. */
  redirectUriInRequest?: boolean;
  codeChallenge: string;
  scope: string;
  resource: string;
  subject: string;
  groups: string[];
  createdAt: number;
}

export interface ConsentRecord {
  scopes: string[];
  grantedAt: number;
}

export function consentKey(clientId: string, subject: string): string {
  return JSON.stringify([clientId, subject]);
}

export interface AuthorizeDeps {
  config: OAuthAsConfig;
  clients: ClientRegistry;
  store: StateStore;
  /** The one predicate deciding whether this TCP peer may assert identity headers. */
  trustedPeer: (address: string) => boolean;
  redirectAllowed: (uri: string) => boolean;
  csrf: ConsentCsrf;
  bodyLimit: () => number;
  logger: Logger;
  audit: Logger;
}

interface Validated {
  client: ClientRecord;
  redirectUri: string;
  state?: string;
  user: string;
  groups: string[];
  codeChallenge: string;
  scope: string[];
  resource: string;
  params: Map<string, string>;
}

/** Parameters of the authorization request carried through the consent form. */
const CARRIED = ['response_type', 'client_id', 'redirect_uri', 'state', 'code_challenge', 'code_challenge_method', 'scope', 'resource'];

/**
 * The authorization endpoint (RFC 6749 §4.1.1 with OAuth 2.1 and MCP rules). The user is whoever
 * the trusted reverse proxy says, and only when the TCP peer is a trusted proxy: the gateway never
 * sees a password, and `X-Forwarded-For` is never read.
 *
 * Order of checks: untrusted peer (403 page) first of all; then phase 1, shown to the user and never
 * redirected (unknown client, bad redirect URI); then the user header (401 page); then phase 2,
 * redirected back to the client with `error`, `state` and `iss` (response_type, PKCE, resource,
 * scope); then consent; then a single-use code.
 */
export class AuthorizeEndpoint {
  constructor(private readonly deps: AuthorizeDeps) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const peer = normalizePeerAddress(req.socket.remoteAddress);
    if (!this.deps.trustedPeer(peer)) {
      req.resume();
      this.deps.audit.warn({ event: 'authorize', decision: 'deny', reason: 'untrusted peer', peer }, 'authorization from an untrusted peer');
      return sendErrorPage(res, 403, 'Sign-in must go through your organisation\'s proxy', 'This page only accepts requests forwarded by the trusted sign-in proxy. Open the link your application gave you again; if this persists, ask an administrator to check the proxy in front of the gateway.');
    }
    let params: Map<string, string>;
    try {
      if (req.method === 'GET') params = uniqueParams(new URL(req.url ?? '', 'http://gateway').searchParams);
      else if (req.method === 'POST') params = await readForm(req, this.deps.bodyLimit());
      else {
        res.setHeader('allow', 'GET, POST');
        return sendErrorPage(res, 405, 'Method not allowed', 'Use GET or POST.');
      }
    } catch (error) {
      if (error instanceof OAuthError) return sendErrorPage(res, error.status === 413 ? 413 : 400, 'Invalid authorization request', error.description);
      throw error;
    }
    const validated = await this.validate(req, res, params);
    if (!validated) return;
    if (req.method === 'POST') return this.decide(res, validated);
    return this.consentOrCode(res, validated);
  }

  /** Runs phases 1 and 2; on failure it has already answered and returns undefined. */
  private async validate(req: IncomingMessage, res: ServerResponse, params: Map<string, string>): Promise<Validated | undefined> {
    const { config } = this.deps;
    // Phase 1: never redirect before the client and its redirect URI are known to be genuine.
    const clientId = params.get('client_id');
    if (!clientId) {
      sendErrorPage(res, 400, 'Invalid authorization request', 'The request has no client_id.');
      return undefined;
    }
    let client: ClientRecord | undefined;
    try {
      client = await this.deps.clients.get(clientId);
    } catch (error) {
      if (!(error instanceof OAuthError)) throw error;
      this.deps.audit.warn({ event: 'authorize', decision: 'deny', clientId, reason: error.description }, 'client metadata document refused');
      sendErrorPage(res, 400, 'This application could not be verified', error.description);
      return undefined;
    }
    if (!client) {
      sendUnknownClientPage(res, clientId);
      return undefined;
    }
    const requestedRedirect = params.get('redirect_uri');
    let redirectUri: string | undefined;
    if (requestedRedirect === undefined) {
      redirectUri = client.redirect_uris.length === 1 ? client.redirect_uris[0] : undefined;
    } else {
      redirectUri = redirectUriMatchesRegistered(requestedRedirect, client.redirect_uris) ? requestedRedirect : undefined;
    }
    if (!redirectUri || !this.deps.redirectAllowed(redirectUri)) {
      this.deps.audit.warn({ event: 'authorize', decision: 'deny', clientId, reason: 'redirect_uri not registered or not allowed' }, 'bad redirect_uri');
      sendErrorPage(res, 400, 'Invalid redirect address', requestedRedirect === undefined
        ? 'The request has no redirect_uri and the application registered more than one.'
        : 'The redirect_uri of this request is not one the application registered, or this gateway does not allow it. You were not redirected.');
      return undefined;
    }
    const state = params.get('state');

    // The user, as asserted by the trusted proxy. A repeated identity header means a client's own
    // header got through next to the proxy's: refuse rather than guess which one is genuine.
    if (headerCount(req, config.trustedUserHeader) > 1 || headerCount(req, config.trustedGroupsHeader) > 1) {
      this.deps.audit.warn({ event: 'authorize', decision: 'deny', clientId, reason: 'repeated identity header' }, 'identity header sent more than once');
      sendErrorPage(res, 400, 'Ambiguous sign-in', `The request carried ${config.trustedUserHeader} or ${config.trustedGroupsHeader} more than once. The sign-in proxy must replace these headers, not add to them.`);
      return undefined;
    }
    const user = headerValue(req, config.trustedUserHeader);
    if (!user) {
      sendErrorPage(res, 401, 'Not signed in', `The sign-in proxy did not say who you are (header ${config.trustedUserHeader}). Ask an administrator to check that the proxy protects /oauth/authorize and sets that header.`);
      return undefined;
    }
    const groups = (headerValue(req, config.trustedGroupsHeader) ?? '').split(',').map((g) => g.trim()).filter(Boolean);

    // Phase 2: errors go back to the client.
    const fail = (error: string, description: string) => {
      this.deps.audit.info({ event: 'authorize', decision: 'deny', clientId, subject: user, reason: error }, description);
      redirect(res, redirectUri!, { error, error_description: description, state, iss: issuerOf(config) });
      return undefined;
    };
    if (params.get('response_type') !== 'code') return fail('unsupported_response_type', 'response_type must be "code"');
    const challenge = params.get('code_challenge');
    const method = params.get('code_challenge_method');
    if (!challenge) return fail('invalid_request', 'PKCE is required: send code_challenge with code_challenge_method=S256');
    if (method !== 'S256') return fail('invalid_request', 'code_challenge_method must be S256');
    if (!isValidCodeChallenge(challenge)) return fail('invalid_request', 'code_challenge must be 43 base64url characters (S256)');
    const resource = resolveResource(params.get('resource'), config.issuerUrl);
    if (!resource) return fail('invalid_target', `unknown resource; this gateway protects ${issuerOf(config)}/mcp`);
    const supported = new Set(config.scopesSupported);
    const requestedScope = params.get('scope');
    const scope = requestedScope === undefined || requestedScope.trim() === ''
      ? (client.scope ? client.scope.split(' ').filter((s) => supported.has(s)) : [...config.scopesSupported])
      : [...new Set(requestedScope.split(' ').filter(Boolean))];
    const unknownScope = scope.find((s) => !supported.has(s));
    if (unknownScope) return fail('invalid_scope', `unknown scope "${unknownScope}"`);

    return { client, redirectUri, state, user, groups, codeChallenge: challenge, scope, resource, params };
  }

  private csrfBinding(v: Validated): string[] {
    return [v.user, ...CARRIED.map((name) => v.params.get(name) ?? '')];
  }

  private async consentOrCode(res: ServerResponse, v: Validated): Promise<void> {
    const { config, store } = this.deps;
    if (config.consent === 'never') return this.issueCode(res, v);
    if (config.consent === 'first-use') {
      const consent = await store.get<ConsentRecord>('consents', consentKey(v.client.client_id, v.user));
      if (consent && v.scope.every((s) => consent.scopes.includes(s))) return this.issueCode(res, v);
    }
    const hidden: Record<string, string> = {};
    for (const name of CARRIED) {
      const value = v.params.get(name);
      if (value !== undefined) hidden[name] = value;
    }
    hidden.csrf_token = this.deps.csrf.issue(this.csrfBinding(v));
    sendConsentPage(res, {
      clientName: v.client.client_name || v.client.client_id,
      clientId: v.client.client_id,
      redirectHost: redirectHost(v.redirectUri),
      user: v.user,
      scopes: v.scope,
      hidden,
      formAction: [formActionSource(v.redirectUri)],
    });
  }

  /** The consent form's answer: only with a CSRF token bound to this user and this very request. */
  private async decide(res: ServerResponse, v: Validated): Promise<void> {
    if (!this.deps.csrf.verify(v.params.get('csrf_token'), this.csrfBinding(v))) {
      this.deps.audit.warn({ event: 'consent', decision: 'deny', clientId: v.client.client_id, subject: v.user, reason: 'bad csrf token' }, 'consent form without a valid CSRF token');
      return sendErrorPage(res, 403, 'This form has expired', 'The consent form was not valid for this request (it expired, or it did not come from this gateway). Start the sign-in again from your application.');
    }
    const decision = v.params.get('decision');
    if (decision !== 'allow') {
      this.deps.audit.info({ event: 'consent', decision: 'deny', clientId: v.client.client_id, subject: v.user }, 'user cancelled');
      return redirect(res, v.redirectUri, { error: 'access_denied', error_description: 'the user cancelled', state: v.state, iss: issuerOf(this.deps.config) });
    }
    const key = consentKey(v.client.client_id, v.user);
    const previous = await this.deps.store.get<ConsentRecord>('consents', key);
    await this.deps.store.put<ConsentRecord>('consents', key, { scopes: [...new Set([...(previous?.scopes ?? []), ...v.scope])], grantedAt: Date.now() });
    this.deps.audit.info({ event: 'consent', decision: 'allow', clientId: v.client.client_id, subject: v.user, scope: v.scope.join(' ') }, 'user consented');
    return this.issueCode(res, v);
  }

  private async issueCode(res: ServerResponse, v: Validated): Promise<void> {
    const code = randomToken(32);
    const record: CodeRecord = {
      clientId: v.client.client_id,
      redirectUri: v.redirectUri,
      redirectUriInRequest: v.params.has('redirect_uri'),
      codeChallenge: v.codeChallenge,
      scope: v.scope.join(' '),
      resource: v.resource,
      subject: v.user,
      groups: v.groups,
      createdAt: Date.now(),
    };
    await this.deps.store.put('codes', hashToken(code), record, this.deps.config.authorizationCodeTtlSeconds);
    this.deps.audit.info({ event: 'authorize', decision: 'allow', clientId: v.client.client_id, subject: v.user }, 'authorization code issued');
    redirect(res, v.redirectUri, { code, state: v.state, iss: issuerOf(this.deps.config) });
  }
}

function headerCount(req: IncomingMessage, name: string): number {
  const lower = name.toLowerCase();
  let count = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === lower) count++;
  return count;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  const text = Array.isArray(value) ? undefined : value?.trim();
  return text ? text : undefined;
}

function redirect(res: ServerResponse, target: string, params: Record<string, string | undefined>): void {
  const url = new URL(target);
  for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.append(key, value);
  res.writeHead(302, { location: url.toString(), 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
  res.end();
}

function redirectHost(uri: string): string {
  const url = new URL(uri);
  return url.host || `${url.protocol}//`;
}

/** CSP form-action source for the redirect that follows the consent form (browsers check it too). */
function formActionSource(uri: string): string {
  const url = new URL(uri);
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : url.protocol;
}
