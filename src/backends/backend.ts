import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  ProgressNotificationSchema,
  type ClientCapabilities,
  McpError,
  ErrorCode,
  type Notification,
  type Tool,
  type Resource,
  type ResourceTemplate,
  type Prompt,
  type ServerCapabilities,
  type Progress,
} from '@modelcontextprotocol/sdk/types.js';
import type { BackendConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { transportCandidates } from './transports.js';
import { RequestChannel, type WireSender } from './channel.js';
import { httpPoster } from './http-post.js';
import { Cancellation } from './cancellation.js';

export type BackendState = 'starting' | 'ready' | 'down' | 'disabled' | 'stopped';
export type ListKind = 'tools' | 'resources' | 'resourceTemplates' | 'prompts';

export interface BackendLists {
  tools: Tool[];
  resources: Resource[];
  resourceTemplates: ResourceTemplate[];
  prompts: Prompt[];
}

export interface BackendHooks {
  /** The backend's lists changed (after connect, a `list_changed`, or a restart). */
  onListsChanged(backend: Backend): void;
  /** Any notification other than progress and list changes (logging, resources/updated...). */
  onNotification(backend: Backend, notification: Notification): void;
  onStateChange?(backend: Backend, state: BackendState): void;
}

/** Answers a request the backend sends to its client (sampling, elicitation, roots). */
export type ServerRequestHandler = (method: string, params: Record<string, unknown> | undefined, signal: AbortSignal) => Promise<Record<string, unknown>>;

export interface BackendOptions {
  /** Capabilities this connection declares to the backend (per-session connections mirror the client's). */
  clientCapabilities?: ClientCapabilities;
  /** Where the backend's requests to its client go; without it they are refused (method not found). */
  onServerRequest?: ServerRequestHandler;
  /** Restart after a crash (default true); per-session connections are simply dropped instead. */
  restart?: boolean;
}

export interface BackendRequestOptions {
  cancellation?: Cancellation;
  onprogress?: (progress: Progress) => void;
}

const GATEWAY_INFO = { name: 'gatehouse', version: '0.1.0' };
const MAX_RESTART_DELAY_MS = 30_000;
const MAX_PAGES = 100;
const CONNECT_TIMEOUT_MS = 30_000;

/**
 * One backend MCP server behind the gateway: an SDK `Client` over stdio, Streamable HTTP or SSE,
 * connected in the background, restarted with exponential backoff when it dies, and holding the
 * last lists it reported (kept while it restarts, so a crash does not churn clients' catalogues;
 * calls fail fast instead).
 */
export class Backend {
  readonly name: string;
  state: BackendState = 'starting';
  lists: BackendLists = { tools: [], resources: [], resourceTemplates: [], prompts: [] };
  capabilities: ServerCapabilities = {};
  lastError?: string;
  /** Resolves once the first connection attempt has finished (successfully or not). */
  readonly firstAttempt: Promise<void>;
  /** True once `firstAttempt` has resolved: later reconnects never make callers wait. */
  firstAttemptDone = false;

  private client?: Client;
  /** Where forwarded requests go once connected (the SDK client keeps the handshake and the rest). */
  private channel?: RequestChannel;
  private restartTimer?: NodeJS.Timeout;
  private restartAttempt = 0;
  private resolveFirstAttempt!: () => void;
  private refreshing = new Map<ListKind, Promise<void>>();
  private generation = 0;
  /** Progress callbacks by the progress token we sent to the backend. */
  private readonly progressHandlers = new Map<string, (progress: Progress) => void>();
  private nextProgressToken = 0;

  constructor(
    readonly config: BackendConfig,
    private readonly logger: Logger,
    private readonly hooks: BackendHooks,
    private readonly options: BackendOptions = {},
  ) {
    this.name = config.name;
    this.firstAttempt = new Promise((resolve) => (this.resolveFirstAttempt = resolve));
    if (!config.enabled) {
      this.state = 'disabled';
      this.firstAttemptDone = true;
      this.resolveFirstAttempt();
    }
  }

  get timeoutMs(): number {
    return this.config.timeoutSeconds * 1000;
  }

  /** Starts connecting in the background; never throws. */
  start(): void {
    if (this.state === 'disabled' || this.state === 'stopped') return;
    void this.connect();
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    // 'starting' is only the first attempt; a restarting backend stays 'down' until it is ready.
    let client: Client | undefined;
    try {
      let describe = '';
      let transport: Transport | undefined;
      let firstError: unknown;
      for (const candidate of transportCandidates(this.config, this.logger)) {
        const attempt = this.createClient();
        try {
          const made = candidate.make();
          // Starting a process (npx may even install it) can take longer than one request may.
          await attempt.connect(made, { timeout: Math.max(this.timeoutMs, CONNECT_TIMEOUT_MS) });
          client = attempt;
          transport = made;
          describe = candidate.describe;
          break;
        } catch (error) {
          firstError ??= error;
          await attempt.close().catch(() => {});
        }
      }
      if (!client || !transport) throw firstError;
      if (generation !== this.generation || this.state === 'stopped') {
        await client.close().catch(() => {});
        return;
      }
      client.onclose = () => this.handleClose(client!, generation);
      client.onerror = (error) => this.logger.debug({ backend: this.name, err: error.message }, 'backend transport error');
      this.client = client;
      this.channel = this.openChannel(client, transport, describe);
      this.capabilities = client.getServerCapabilities() ?? {};
      await this.refreshAll();
      this.restartAttempt = 0;
      this.lastError = undefined;
      this.setState('ready');
      this.logger.info({ backend: this.name, transport: describe, tools: this.lists.tools.length }, 'backend ready');
    } catch (error) {
      await client?.close().catch(() => {});
      if (this.client === client) {
        this.client = undefined;
        this.channel?.close();
        this.channel = undefined;
      }
      this.lastError = error instanceof Error ? error.message : String(error);
      this.logger.warn({ backend: this.name, err: this.lastError }, 'backend failed to start');
      if (this.state !== 'stopped') {
        this.setState('down');
        if (this.options.restart !== false) this.scheduleRestart();
      }
    } finally {
      this.firstAttemptDone = true;
      this.resolveFirstAttempt();
    }
  }

  private createClient(): Client {
    const capabilities = this.options.clientCapabilities ?? {};
    const client = new Client(GATEWAY_INFO, { capabilities });
    client.fallbackNotificationHandler = async (notification) => this.handleNotification(notification);
    // Progress is routed by our own token map: the SDK forgets a request's progress handler as soon
    // as its response arrives, dropping a last notification that came in the same read.
    client.setNotificationHandler(ProgressNotificationSchema, (notification) => {
      const { progressToken, ...progress } = notification.params;
      this.progressHandlers.get(String(progressToken))?.(progress as Progress);
    });
    const forward = this.options.onServerRequest;
    if (forward) {
      const handle = async (request: { method: string; params?: Record<string, unknown> }, extra: { signal: AbortSignal }) =>
        (await forward(request.method, request.params, extra.signal)) as never;
      if (capabilities.sampling) client.setRequestHandler(CreateMessageRequestSchema, handle);
      if (capabilities.elicitation) client.setRequestHandler(ElicitRequestSchema, handle);
      if (capabilities.roots) client.setRequestHandler(ListRootsRequestSchema, handle);
    }
    return client;
  }

  private openChannel(client: Client, transport: Transport, describe: string): RequestChannel {
    let send: WireSender = (message) => transport.send(message as never);
    if (describe === 'streamable-http' && this.config.kind === 'http') {
      send = httpPoster({
        url: this.config.url,
        headers: this.config.headers,
        transport: transport as StreamableHTTPClientTransport,
        deliver: (message) => transport.onmessage?.(message as never),
        onSessionLost: () => {
          if (this.client !== client) return;
          this.channel?.close(new McpError(ErrorCode.ConnectionClosed, 'the backend ended its session; reconnecting'));
          void client.close().catch(() => {});
        },
        idleTimeoutMs: this.timeoutMs * 10 + 5_000,
      });
    }
    const channel = new RequestChannel(send, (method, params) => client.notification({ method, params } as never));
    channel.intercept(transport);
    return channel;
  }

  private handleClose(client: Client, generation: number): void {
    if (this.client !== client || generation !== this.generation) return;
    this.client = undefined;
    this.channel?.close();
    this.channel = undefined;
    if (this.state === 'stopped') return;
    this.lastError = 'connection closed';
    this.setState('down');
    if (this.options.restart === false) {
      this.logger.info({ backend: this.name }, 'backend connection closed');
      return;
    }
    this.logger.warn({ backend: this.name }, 'backend connection closed; restarting');
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.restartTimer || this.state === 'stopped') return;
    const delay = Math.min(MAX_RESTART_DELAY_MS, 250 * 2 ** this.restartAttempt);
    this.restartAttempt++;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.connect();
    }, delay);
    this.restartTimer.unref();
  }

  private setState(state: BackendState): void {
    if (this.state === state) return;
    this.state = state;
    this.hooks.onStateChange?.(this, state);
  }

  private async handleNotification(notification: Notification): Promise<void> {
    switch (notification.method) {
      case 'notifications/tools/list_changed':
        return this.refresh('tools');
      case 'notifications/prompts/list_changed':
        return this.refresh('prompts');
      case 'notifications/resources/list_changed':
        await this.refresh('resources');
        return this.refresh('resourceTemplates');
      default:
        this.hooks.onNotification(this, notification);
    }
  }

  private async refreshAll(): Promise<void> {
    const caps = this.capabilities;
    const [tools, resources, resourceTemplates, prompts] = await Promise.all([
      caps.tools ? this.listAll('tools/list', 'tools') : [],
      caps.resources ? this.listAll('resources/list', 'resources') : [],
      caps.resources ? this.listAll('resources/templates/list', 'resourceTemplates').catch(() => []) : [],
      caps.prompts ? this.listAll('prompts/list', 'prompts') : [],
    ]);
    this.lists = {
      tools: tools as Tool[],
      resources: resources as Resource[],
      resourceTemplates: resourceTemplates as ResourceTemplate[],
      prompts: prompts as Prompt[],
    };
    this.hooks.onListsChanged(this);
  }

  /** Re-reads one list; concurrent refreshes of the same list share one request. */
  refresh(kind: ListKind): Promise<void> {
    const running = this.refreshing.get(kind);
    if (running) return running;
    const method = { tools: 'tools/list', resources: 'resources/list', resourceTemplates: 'resources/templates/list', prompts: 'prompts/list' }[kind];
    const work = this.listAll(method, kind)
      .then((items) => {
        this.lists = { ...this.lists, [kind]: items };
        this.hooks.onListsChanged(this);
      })
      .catch((error: unknown) => {
        this.logger.warn({ backend: this.name, list: kind, err: String(error) }, 'backend list refresh failed');
      })
      .finally(() => this.refreshing.delete(kind));
    this.refreshing.set(kind, work);
    return work;
  }

  /** Follows `nextCursor` until the list ends (bounded, so a looping backend cannot hang us). */
  private async listAll(method: string, key: ListKind): Promise<unknown[]> {
    const items: unknown[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const result = (await this.request(method, cursor ? { cursor } : {})) as Record<string, unknown>;
      const pageItems = result[key];
      if (Array.isArray(pageItems)) items.push(...pageItems);
      cursor = typeof result.nextCursor === 'string' && result.nextCursor ? result.nextCursor : undefined;
      if (!cursor) break;
    }
    return items;
  }

  /**
   * Sends one request to the backend and returns its result untouched (the SDK's loose result
   * schema keeps every field). Fails fast when the backend is not connected.
   */
  async request(method: string, params: Record<string, unknown> | undefined, options: BackendRequestOptions = {}): Promise<Record<string, unknown>> {
    const channel = this.channel;
    if (!channel) {
      throw new McpError(ErrorCode.InternalError, `Backend "${this.name}" is unavailable${this.lastError ? ` (${this.lastError})` : ''}`);
    }
    if (!options.onprogress) return channel.request(method, params, { cancellation: options.cancellation, timeoutMs: this.timeoutMs });
    // With progress, the deadline restarts on every notification (bounded by ten times the timeout).
    const token = `gatehouse-${++this.nextProgressToken}`;
    const cancellation = new Cancellation();
    let timedOut = false;
    const expire = () => {
      timedOut = true;
      cancellation.abort(new McpError(ErrorCode.RequestTimeout, 'Request timed out'));
    };
    const started = Date.now();
    let timer = setTimeout(expire, this.timeoutMs);
    const onprogress = options.onprogress;
    this.progressHandlers.set(token, (progress) => {
      clearTimeout(timer);
      timer = setTimeout(expire, Math.max(0, Math.min(this.timeoutMs, started + this.timeoutMs * 10 - Date.now())));
      onprogress(progress);
    });
    const caller = options.cancellation;
    if (caller?.aborted) cancellation.abort(caller.reason);
    const stopFollowing = caller?.onAbort((reason) => cancellation.abort(reason));
    try {
      const meta = { ...((params?._meta as Record<string, unknown> | undefined) ?? {}), progressToken: token };
      return await channel.request(method, { ...params, _meta: meta }, { cancellation, timeoutMs: this.timeoutMs * 10 });
    } catch (error) {
      if (timedOut && !caller?.aborted) throw new McpError(ErrorCode.RequestTimeout, 'Request timed out');
      throw error;
    } finally {
      stopFollowing?.();
      clearTimeout(timer);
      // Notifications already read are delivered in microtasks queued before this continuation ran.
      this.progressHandlers.delete(token);
    }
  }

  async notify(notification: Notification): Promise<void> {
    await this.client?.notification(notification as never).catch(() => {});
  }

  /** Stops for good: no restart. */
  async stop(): Promise<void> {
    this.setState('stopped');
    this.generation++;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const client = this.client;
    this.client = undefined;
    this.channel?.close();
    this.channel = undefined;
    await client?.close().catch(() => {});
  }
}
