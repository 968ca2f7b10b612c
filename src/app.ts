import type { GatewayConfig } from './config/types.js';
import { UserError } from './errors.js';
import { AccessPolicy } from './acl/decide.js';
import { ProviderChain } from './auth/chain.js';
import { createProviders, challengeFor } from './auth/index.js';
import { Backend } from './backends/backend.js';
import { closeDispatchers } from './backends/dispatcher.js';
import { HttpFront, type HttpRoutes } from './http/server.js';
import { createAdminApi } from './http/admin-api.js';
import { compileOriginPolicy } from './http/origin.js';
import { createLogger, type Logger } from './log.js';
import { Catalogue } from './mcp/catalogue.js';
import { Metrics, metricsEndpoint } from './observability/metrics.js';
import { authAllowedEvent, openAuditLog, type AuditLog } from './observability/audit.js';
import { McpFront } from './mcp/front.js';
import { Notifier } from './mcp/notifier.js';
import { Router } from './mcp/router.js';
import { SessionRegistry, type FrontSession } from './mcp/session.js';
import { SessionIds, sessionSecret } from './mcp/session-id.js';
import { AuthorizationServer } from './oauth/server.js';
import { AuthAdmin } from './oauth/admin.js';
import type { CimdOptions } from './oauth/cimd.js';
import { openStore, parseInlineSeed } from './store/index.js';
import type { StateStore } from './store/types.js';
import { join } from 'node:path';
import { McpError, ErrorCode } from '@modelcontextprotocol/sdk/types.js';

export interface GatewayOptions {
  config: GatewayConfig;
  host?: string;
  port?: number;
  logger?: Logger;
  /** Environment for MCP_AUTH_SERVER_CONFIG and MCP_AUTH_SERVER_PATH (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Extra TLS trust for Client ID Metadata Document fetches (e.g. a corporate CA). */
  cimd?: CimdOptions;
}

/** The Authorization Server and its store, when `oauth_as` is configured. */
interface OAuthParts {
  authServer: AuthorizationServer;
  store: StateStore;
}

/** Everything derived from one config document that a reload swaps as a whole. */
interface Derived {
  config: GatewayConfig;
  policy: AccessPolicy;
  chain: ProviderChain;
  originPolicy: ReturnType<typeof compileOriginPolicy>;
}

/**
 * The composition root: the only module that builds implementations and wires config → auth →
 * ACL → router → backends → HTTP. Everything else receives its collaborators.
 */
export class Gateway {
  readonly logger: Logger;
  /** The audit log (observability.audit): authentication, ACL, tool calls, OAuth and admin events. */
  readonly audit: Logger;
  /** The Prometheus metrics of this gateway (its own registry). */
  readonly metrics: Metrics;
  private derived: Derived;
  private backends: Backend[] = [];
  private readonly catalogue: Catalogue;
  private readonly sessions: SessionRegistry;
  private readonly notifier: Notifier;
  private readonly http: HttpFront;
  private reportedProblems = new Set<string>();
  private address?: { host: string; port: number };
  private closing?: Promise<void>;

  private constructor(config: GatewayConfig, private readonly bindHost: string, logger: Logger, private readonly auditLog: AuditLog, metrics: Metrics, private readonly oauth?: OAuthParts) {
    this.logger = logger;
    const audit = (this.audit = auditLog.logger);
    this.metrics = metrics;
    this.derived = this.derive(config);
    this.catalogue = new Catalogue(config.aggregation.nameMaxLength);
    this.sessions = new SessionRegistry(config.http.sessionIdleTimeoutSeconds * 1000);
    metrics.observeBackends(() => this.backends.map((b) => ({ name: b.name, up: b.state === 'ready' })));
    metrics.observeSessions(() => this.sessions.size);
    this.notifier = new Notifier(this.catalogue, this.sessions, () => this.backends);
    const router = new Router({
      catalogue: this.catalogue,
      policy: () => this.derived.policy,
      backends: () => this.backends,
      startupWaitMs: () => this.derived.config.aggregation.startupWaitMs,
      sessionConnection: (session, backend) => this.sessionConnection(session, backend),
      logger,
      audit,
      metrics,
    });
    const front = new McpFront({ router, sessions: this.sessions, logger, bodyLimit: () => this.derived.config.http.mcpBodyLimitBytes });
    const authenticate: HttpRoutes['authenticate'] = async (request) => {
      const outcome = await this.derived.chain.authenticate(request);
      // Never the credential: the identity it stands for, or why it was refused.
      audit.info(outcome.ok
        ? authAllowedEvent(outcome.identity)
        : { event: 'auth', decision: 'deny', provider: outcome.provider, reason: outcome.reason }, 'authentication');
      return outcome;
    };
    // /admin/api/*: the same ProviderChain as /mcp plus the `admin` role; 404 without the AS.
    const adminApi = createAdminApi({
      admin: oauth ? new AuthAdmin({ store: oauth.store, preRegistered: () => oauth.authServer.clients.preRegisteredClients() }) : undefined,
      authenticate,
      audit,
      logger,
    });
    this.http = new HttpFront({
      authenticate,
      mcp: (req, res, identity, note) => front.handle(req, res, identity, note),
      originPolicy: () => this.derived.originPolicy,
      readiness: () => this.readiness(),
      metrics: metricsEndpoint(metrics, () => this.derived.config.observability.metrics),
      extra: async (req, res, path, note) => (await adminApi(req, res, path, note)) || (oauth ? oauth.authServer.handle(req, res, path) : false),
    }, logger, metrics);
  }

  static async start(options: GatewayOptions): Promise<Gateway> {
    const host = options.host ?? '127.0.0.1';
    const logger = options.logger ?? createLogger();
    const auditLog = await openAuditLog(options.config.observability.audit, logger);
    const metrics = new Metrics({ defaultMetrics: options.config.observability.metrics.enabled });
    const limits = { oauthBody: options.config.http.oauthBodyLimitBytes };
    let oauth: OAuthParts | undefined;
    let gateway: Gateway;
    try {
      oauth = await Gateway.startAuthorizationServer(options, logger, auditLog.logger, metrics, () => limits.oauthBody);
      gateway = new Gateway(options.config, host, logger, auditLog, metrics, oauth);
    } catch (error) {
      await oauth?.authServer.close();
      await oauth?.store.close();
      await auditLog.close();
      throw error;
    }
    gateway.onReload = (config) => (limits.oauthBody = config.http.oauthBodyLimitBytes);
    gateway.shareSessions();
    gateway.sessions.start();
    gateway.setBackends(options.config.backends.map((c) => gateway.createBackend(c)));
    gateway.address = await gateway.http.listen(options.port ?? 8080, host);
    return gateway;
  }

  private onReload?: (config: GatewayConfig) => void;

  /**
   * Makes MCP sessions portable between replicas: ids every replica can verify, and terminations
   * recorded in the state store when there is one.
   */
  private shareSessions(): void {
    const tokens = Object.keys(this.derived.config.serverAuth.bearer?.tokens ?? {});
    const ids = new SessionIds(sessionSecret(this.oauth?.authServer.secret, tokens));
    const store = this.oauth?.store;
    this.sessions.share(ids, store ? {
      mark: (key, ttlSeconds) => store.put('mcpSessions', key, { terminated: true }, ttlSeconds),
      isTerminated: async (key) => (await store.get('mcpSessions', key)) !== undefined,
    } : undefined);
  }

  /**
   * The Authorization Server, when `oauth_as` is among the providers: the state store (the
   * configured one; in memory, with a warning, when only the MCP_AUTH_SERVER_CONFIG seed is given),
   * the signing secret, and the endpoints.
   */
  private static async startAuthorizationServer(options: GatewayOptions, logger: Logger, audit: Logger, metrics: Metrics, bodyLimit: () => number): Promise<OAuthParts | undefined> {
    const { config } = options;
    const oauthAs = config.serverAuth.oauthAs;
    if (!oauthAs || !config.serverAuth.providers.includes('oauth_as')) return undefined;
    const env = options.env ?? process.env;
    const seedText = env.MCP_AUTH_SERVER_CONFIG;
    const seed = seedText ? parseInlineSeed(seedText) : { clients: [] };
    const storeConfig = seedText && !config.stateStore.configured ? { ...config.stateStore, type: 'memory' as const } : config.stateStore;
    const store = await openStore(storeConfig, { logger, env, onWrite: metrics.storeWrite });
    try {
      const authServer = await AuthorizationServer.create({
        config: oauthAs,
        store,
        statePath: config.stateStore.path ?? join(config.baseDir, 'auth_server.json'),
        seedClients: seed.clients,
        bodyLimit,
        logger,
        audit,
        cimd: options.cimd,
        onTokenOutcome: metrics.tokenOutcome,
      });
      return { authServer, store };
    } catch (error) {
      await store.close();
      throw error;
    }
  }

  /** Base URL the gateway listens on, e.g. `http://127.0.0.1:8080`. */
  get url(): string {
    const { host, port } = this.address ?? { host: this.bindHost, port: 0 };
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  get config(): GatewayConfig {
    return this.derived.config;
  }

  private derive(config: GatewayConfig): Derived {
    let providers;
    try {
      providers = createProviders(config.serverAuth, this.oauth ? { oauth_as: this.oauth.authServer.provider } : {});
    } catch (error) {
      throw new UserError(`${config.sourcePath ?? 'configuration'}: ${(error as Error).message}`);
    }
    return {
      config,
      policy: new AccessPolicy(config.acl),
      chain: new ProviderChain(providers, challengeFor(config.serverAuth)),
      originPolicy: compileOriginPolicy({
        bindHost: this.bindHost,
        allowedHosts: config.http.allowedHosts,
        allowedOrigins: config.http.allowedOrigins,
        publicUrl: config.serverAuth.oauthAs?.issuerUrl,
      }),
    };
  }

  private createBackend(config: GatewayConfig['backends'][number]): Backend {
    return new Backend(config, this.logger, {
      onListsChanged: () => this.listsChanged(),
      onNotification: (backend, notification) => this.notifier.fromBackend(backend, notification),
      onStateChange: (backend, state) => this.logger.debug({ backend: backend.name, state }, 'backend state'),
    });
  }

  /**
   * A session's own connection to a `per-session` backend, opened on first use and closed with the
   * session. It declares the client's sampling, elicitation and roots capabilities and forwards the
   * backend's requests for them to that client; its notifications go to that session only.
   */
  private sessionConnection(session: FrontSession, template: Backend): Promise<Backend> {
    const existing = session.connections.get(template.name);
    if (existing) {
      return existing.then((backend) => {
        if (backend.state === 'ready') return backend;
        session.connections.delete(template.name);
        return this.sessionConnection(session, template);
      });
    }
    const caps = session.clientCapabilities;
    const connection = (async () => {
      const backend = new Backend(template.config, this.logger, {
        onListsChanged: () => {},
        onNotification: (_b, notification) => this.notifier.toSession(session, template, notification),
      }, {
        clientCapabilities: {
          ...(caps.sampling ? { sampling: caps.sampling } : {}),
          ...(caps.elicitation ? { elicitation: caps.elicitation } : {}),
          ...(caps.roots ? { roots: caps.roots } : {}),
        },
        onServerRequest: (method, params, signal) => session.requestClient(method, params, signal, template.name),
        restart: false,
      });
      backend.start();
      await backend.firstAttempt;
      if (backend.state !== 'ready') {
        await backend.stop();
        throw new McpError(ErrorCode.InternalError, `Backend "${template.name}" is unavailable${backend.lastError ? ` (${backend.lastError})` : ''}`);
      }
      return backend;
    })();
    session.connections.set(template.name, connection);
    connection.catch(() => session.connections.delete(template.name));
    return connection;
  }

  private setBackends(backends: Backend[]): void {
    this.backends = backends;
    this.catalogue.setBackends(backends);
    this.listsChanged();
    for (const backend of backends) backend.start();
  }

  private listsChanged(): void {
    this.notifier.listsChanged();
    for (const problem of this.catalogue.problems) {
      const key = `${problem.backend}\0${problem.name}\0${problem.kind}`;
      if (this.reportedProblems.has(key)) continue;
      this.reportedProblems.add(key);
      this.logger.warn({ backend: problem.backend, name: problem.name }, problem.message);
    }
  }

  /** Ready once every backend finished its first connection attempt and the state store answers. */
  private async readiness(): Promise<{ ready: boolean; detail: Record<string, unknown> }> {
    const backends: Record<string, string> = {};
    let starting = false;
    for (const backend of this.backends) {
      backends[backend.name] = backend.state;
      if (backend.state === 'starting') starting = true;
    }
    if (!this.oauth) return { ready: !starting, detail: { backends } };
    let timer: NodeJS.Timeout | undefined;
    const storeUp = await Promise.race([
      this.oauth.store.healthy().catch(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000))),
    ]);
    clearTimeout(timer);
    return { ready: !starting && storeUp, detail: { backends, stateStore: storeUp ? 'up' : 'unreachable' } };
  }

  /** Backend states, for tests and the admin surface. */
  backendStates(): Record<string, string> {
    return Object.fromEntries(this.backends.map((b) => [b.name, b.state]));
  }

  /** Waits until no backend is still on its first connection attempt. */
  async ready(): Promise<void> {
    await Promise.all(this.backends.map((b) => b.firstAttempt));
  }

  /**
   * Swaps in a new, already validated config: ACL, providers, limits and the Origin policy at
   * once; backends whose settings changed are restarted, removed ones stopped, new ones started.
   */
  async reload(config: GatewayConfig): Promise<void> {
    const derived = this.derive(config);
    const previous = new Map(this.backends.map((b) => [b.name, b]));
    const next: Backend[] = [];
    const stopping: Backend[] = [];
    const created: Backend[] = [];
    for (const backendConfig of config.backends) {
      const existing = previous.get(backendConfig.name);
      previous.delete(backendConfig.name);
      if (existing && JSON.stringify(existing.config) === JSON.stringify(backendConfig)) next.push(existing);
      else {
        if (existing) stopping.push(existing);
        const backend = this.createBackend(backendConfig);
        created.push(backend);
        next.push(backend);
      }
    }
    stopping.push(...previous.values());
    if (JSON.stringify(config.serverAuth.oauthAs) !== JSON.stringify(this.derived.config.serverAuth.oauthAs) || JSON.stringify(config.stateStore) !== JSON.stringify(this.derived.config.stateStore)) {
      this.logger.warn('serverAuth.oauthAs or stateStore changed: those settings take effect at the next restart');
    }
    if (JSON.stringify(config.observability.audit) !== JSON.stringify(this.derived.config.observability.audit)) {
      this.logger.warn('observability.audit changed: it takes effect at the next restart');
    }
    // After a log rotation (logrotate, then SIGHUP) the audit file is opened again at its path.
    this.auditLog.reopen();
    this.derived = derived;
    this.onReload?.(config);
    this.sessions.setIdleTimeout(config.http.sessionIdleTimeoutSeconds * 1000);
    this.catalogue.setBackends(next);
    this.backends = next;
    await Promise.all(stopping.map((b) => b.stop()));
    this.listsChanged();
    for (const backend of created) backend.start();
    this.logger.info({ backends: next.map((b) => b.name), restarted: stopping.map((b) => b.name) }, 'configuration reloaded');
  }

  /** Drains in-flight requests, ends sessions and stops backends. Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // GET streams never finish on their own: end them so draining waits only for real requests.
      this.sessions.endStreams();
      await this.http.drain(this.derived.config.http.shutdownGraceSeconds * 1000);
      this.sessions.closeAll();
      await Promise.all(this.backends.map((b) => b.stop()));
      await this.oauth?.authServer.close();
      await this.oauth?.store.close();
      await closeDispatchers();
      await this.auditLog.close();
    })();
    return this.closing;
  }
}
