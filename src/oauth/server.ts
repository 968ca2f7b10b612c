import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OAuthAsConfig, PreRegisteredClientConfig } from '../config/types.js';
import { StoreUnavailableError, type StateStore } from '../store/types.js';
import type { Logger } from '../log.js';
import type { AuthProvider } from '../auth/types.js';
import { compileCidrMatcher, normalizePeerAddress } from '../http/peer.js';
import { createOAuthJwtProvider } from '../auth/providers/oauth-jwt.js';
import { OAuthError } from './errors.js';
import { discoveryCors, readForm, readJson, sendJson, sendOAuthError } from './http.js';
import { sendErrorPage } from './pages.js';
import { authorizationServerMetadata, discoveryPaths, ENDPOINTS, issuerOf, protectedResourceMetadata, MCP_PATH } from './metadata.js';
import { compileRedirectAllowlist } from './redirect-uri.js';
import { AccessTokens } from './tokens.js';
import { RefreshTokens } from './refresh-token.js';
import { resolveJwtSecret } from './secret.js';
import { ClientMetadataDocuments, type CimdOptions } from './cimd.js';
import { ClientRegistry } from './clients.js';
import { ConsentCsrf } from './csrf.js';
import { Registrar } from './register.js';
import { AuthorizeEndpoint } from './authorize.js';
import { TokenEndpoint, RevocationEndpoint } from './token.js';
import { sendBody } from '../http/respond.js';

export interface AuthorizationServerOptions {
  config: OAuthAsConfig;
  store: StateStore;
  /** Where a generated jwt.secret is kept when `jwtSecret` is not configured (next to the state). */
  statePath: string;
  /** Clients from the MCP_AUTH_SERVER_CONFIG seed (read-only). */
  seedClients: PreRegisteredClientConfig[];
  bodyLimit: () => number;
  logger: Logger;
  audit: Logger;
  cimd?: CimdOptions;
  /** Token and revocation outcomes (metrics): `TokenDeps.onOutcome`. */
  onTokenOutcome?: (grant: string, outcome: string) => void;
}

const REAP_INTERVAL_MS = 10 * 60_000;
const REVOCATION_CHECK_MS = 750;

/**
 * The OAuth 2.1 Authorization Server: discovery documents, registration, authorization with the
 * trusted-header login, token and revocation endpoints, and the `oauth_as` provider that verifies
 * its access tokens on /mcp. `handle` answers the paths it owns and returns false for others.
 */
export class AuthorizationServer {
  readonly provider: AuthProvider;
  /** Every client the AS knows (pre-registered, metadata documents, registered); the admin API reads it. */
  readonly clients: ClientRegistry;
  private readonly paths: ReturnType<typeof discoveryPaths>;
  private readonly asMetadata: string;
  private readonly prMetadata: string;
  private readonly registrar: Registrar;
  private readonly authorize: AuthorizeEndpoint;
  private readonly token: TokenEndpoint;
  private readonly revocation: RevocationEndpoint;
  private readonly cimd: ClientMetadataDocuments;
  private readonly reaper: NodeJS.Timeout;

  /** The signing secret, from which other shared keys (MCP session ids) are derived. */
  readonly secret: Uint8Array;

  private constructor(private readonly options: AuthorizationServerOptions, secret: Uint8Array) {
    this.secret = secret;
    const { config, store, logger, audit } = options;
    const issuer = issuerOf(config);
    const redirectAllowed = compileRedirectAllowlist(config.redirectUriAllowlist);
    this.cimd = new ClientMetadataDocuments(config, redirectAllowed, logger, options.cimd);
    const clients = (this.clients = new ClientRegistry(store, config, this.cimd, logger, options.seedClients));
    const accessTokens = new AccessTokens({ secret, issuer, audience: issuer + MCP_PATH, ttlSeconds: config.accessTokenTtlSeconds });
    const refreshTokens = new RefreshTokens(secret);
    this.provider = createOAuthJwtProvider({
      tokens: accessTokens,
      store,
      clientExists: (id) => clients.exists(id),
      // A revocation reaches every replica within a second (one store read per token per window).
      revocationCacheMs: REVOCATION_CHECK_MS,
      // Redis outage: /mcp trusts confirmations up to 5 min old, so revocations made during an
      // outage bite once Redis is back (src/store/README.md).
      outageGraceMs: store.kind === 'redis' ? 5 * 60_000 : undefined,
    });
    this.paths = discoveryPaths(config);
    this.asMetadata = JSON.stringify(authorizationServerMetadata(config, clients.hasConfidentialClients));
    this.prMetadata = JSON.stringify(protectedResourceMetadata(config));
    this.registrar = new Registrar(store, config, redirectAllowed, logger);
    this.authorize = new AuthorizeEndpoint({
      config,
      clients,
      store,
      trustedPeer: compileCidrMatcher(config.trustedSourceCidrs),
      redirectAllowed,
      csrf: new ConsentCsrf(secret),
      bodyLimit: options.bodyLimit,
      logger,
      audit,
    });
    const tokenDeps = { config, store, clients, accessTokens, refreshTokens, logger, audit, onOutcome: options.onTokenOutcome };
    this.token = new TokenEndpoint(tokenDeps);
    this.revocation = new RevocationEndpoint(tokenDeps);
    const reap = () => clients.reap().catch((error: Error) => logger.warn({ err: error.message }, 'client reaping failed'));
    void reap();
    this.reaper = setInterval(reap, REAP_INTERVAL_MS);
    this.reaper.unref();
  }

  static async create(options: AuthorizationServerOptions): Promise<AuthorizationServer> {
    const secret = await resolveJwtSecret({ configured: options.config.jwtSecret, statePath: options.statePath, logger: options.logger });
    return new AuthorizationServer(options, secret);
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const method = req.method ?? 'GET';
    if (path.startsWith('/.well-known/')) {
      const document = this.paths.authorizationServer.includes(path) ? this.asMetadata
        : this.paths.protectedResource.includes(path) ? this.prMetadata : undefined;
      if (!document) return false;
      discoveryCors(res);
      if (method === 'OPTIONS') {
        res.writeHead(204).end();
      } else if (method === 'GET' || method === 'HEAD') {
        const headers = { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' };
        if (method === 'HEAD') res.writeHead(200, headers).end();
        else sendBody(res, 200, headers, document);
      } else {
        sendJson(res, 405, { error: 'invalid_request', error_description: 'use GET' }, { allow: 'GET, OPTIONS' });
      }
      return true;
    }
    if (path === ENDPOINTS.authorize) {
      try {
        await this.authorize.handle(req, res);
      } catch (error) {
        if (!(error instanceof StoreUnavailableError) || res.headersSent) throw error;
        this.options.logger.warn({ path, err: error.message }, 'authorize: state store unavailable');
        sendErrorPage(res, 503, 'Sign-in is temporarily unavailable', 'The gateway cannot reach its state store right now. Try again in a moment.');
      }
      return true;
    }
    if (path !== ENDPOINTS.token && path !== ENDPOINTS.register && path !== ENDPOINTS.revoke) return false;
    if (method === 'OPTIONS') {
      // Browser-based clients call these cross-origin; they carry no cookies, so CORS is harmless.
      discoveryCors(res);
      res.setHeader('access-control-allow-methods', 'POST, OPTIONS');
      res.writeHead(204).end();
      return true;
    }
    res.setHeader('access-control-allow-origin', '*');
    if (method !== 'POST') {
      req.resume();
      sendJson(res, 405, { error: 'invalid_request', error_description: 'use POST' }, { allow: 'POST' });
      return true;
    }
    try {
      const limit = this.options.bodyLimit();
      if (path === ENDPOINTS.register) {
        if (!this.options.config.registration.enabled) throw new OAuthError('invalid_request', 'dynamic client registration is disabled on this gateway', 404);
        const body = await readJson(req, limit);
        const result = await this.registrar.register(body, normalizePeerAddress(req.socket.remoteAddress));
        sendJson(res, result.status, result.body);
      } else if (path === ENDPOINTS.token) {
        const form = await readForm(req, limit);
        sendJson(res, 200, await this.token.handle(req, form));
      } else {
        const form = await readForm(req, limit);
        await this.revocation.handle(req, form);
        sendJson(res, 200, {});
      }
    } catch (error) {
      if (error instanceof OAuthError) {
        if (error.status >= 500 || error.code === 'invalid_client') this.options.logger.info({ path, error: error.code, detail: error.detail ?? error.description }, 'oauth request refused');
        sendOAuthError(res, error);
      } else if (error instanceof StoreUnavailableError) {
        this.options.logger.warn({ path, err: error.message }, 'oauth endpoint: state store unavailable');
        sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'the gateway cannot reach its state store; try again shortly' }, { 'retry-after': '5' });
      } else {
        this.options.logger.error({ path, err: (error as Error).message }, 'oauth endpoint failed');
        sendJson(res, 500, { error: 'server_error', error_description: 'internal error' });
      }
    }
    return true;
  }

  async close(): Promise<void> {
    clearInterval(this.reaper);
    await this.cimd.close();
  }
}
