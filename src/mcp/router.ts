import { SerializedResult } from './serialized.js';
import { McpError, ErrorCode, type Progress, type LoggingLevel } from '@modelcontextprotocol/sdk/types.js';
import { perIdentity, type Identity } from '../auth/types.js';
import type { AccessPolicy, AclDecision, ItemKind } from '../acl/decide.js';
import type { Backend } from '../backends/backend.js';
import type { Cancellation } from '../backends/cancellation.js';
import { RepeatedFields, SelfSerializingFields, type Logger } from '../log.js';
import type { RouterMetrics, ToolCallOutcome } from '../observability/metrics.js';
import type { Catalogue, CatalogueEntry } from './catalogue.js';
import type { FrontSession } from './session.js';

export const GATEWAY_NAME = 'gatehouse';
export const GATEWAY_VERSION = '0.1.0';

/** Thrown by handlers; becomes a JSON-RPC error response. */
export class RpcError extends Error {
  constructor(readonly code: number, message: string, readonly data?: unknown) {
    super(message);
  }
}

export interface RequestContext {
  identity: Identity;
  session: FrontSession;
  cancellation: Cancellation;
  /** Present when the client asked for progress (`_meta.progressToken`) and the response streams. */
  progress?: (progress: Progress) => void;
  /** Records which backend serves this request, so its logging notifications can be routed here. */
  useBackend(name: string): void;
  /** The request log line's fields; `tools/call` fills `backend` and `tool` (the first call of a batch). */
  note?: { backend?: string; tool?: string };
}

/** Opens (or reuses) a session's own connection to a `per-session` backend. */
export type SessionConnector = (session: FrontSession, backend: Backend) => Promise<Backend>;

export interface RouterDeps {
  catalogue: Catalogue;
  policy: () => AccessPolicy;
  backends: () => readonly Backend[];
  startupWaitMs: () => number;
  sessionConnection: SessionConnector;
  logger: Logger;
  audit: Logger;
  metrics?: RouterMetrics;
}

const LOG_LEVELS: LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];
const PAGE_SIZE = 1000;
const LIST_CACHE_LIMIT = 2000;
const PAGE_CACHE_LIMIT = 64;

type ListName = 'tools' | 'prompts' | 'resources' | 'resourceTemplates';

/**
 * Front-side MCP request handling: lists are served from the in-memory catalogue filtered by the
 * ACL (cached per identity and catalogue version), and everything else is resolved to one backend
 * and forwarded with its result left as the backend sent it, apart from the names and URIs the
 * gateway rewrites. The same `decide` call guards listing and use, and a hidden item is refused
 * with exactly the error a missing one gets.
 */
export class Router {
  private listCache = new Map<string, unknown[]>();
  /** Serialized pages, most recently used last; bounded, as a page of a big catalogue is large. */
  private pageCache = new Map<string, SerializedResult>();
  private listCacheVersion = -1;

  constructor(private readonly deps: RouterDeps) {}

  async handle(method: string, params: Record<string, unknown> | undefined, ctx: RequestContext): Promise<unknown> {
    switch (method) {
      case 'ping':
        return {};
      case 'tools/list':
        return this.list('tools', 'tool', params, ctx);
      case 'prompts/list':
        return this.list('prompts', 'prompt', params, ctx);
      case 'resources/list':
        return this.list('resources', 'resource', params, ctx);
      case 'resources/templates/list':
        return this.list('resourceTemplates', 'resource', params, ctx);
      case 'tools/call':
        return this.callTool(params ?? {}, ctx);
      case 'prompts/get':
        return this.getPrompt(params ?? {}, ctx);
      case 'resources/read':
        return this.readResource(params ?? {}, ctx);
      case 'resources/subscribe':
      case 'resources/unsubscribe':
        return this.subscription(method, params ?? {}, ctx);
      case 'completion/complete':
        return this.complete(params ?? {}, ctx);
      case 'logging/setLevel':
        return this.setLevel(params ?? {}, ctx);
      default:
        throw new RpcError(ErrorCode.MethodNotFound, `Method not found: ${method}`);
    }
  }

  /**
   * Lets lists answer with what is ready, waiting a short bound for backends still starting.
   * Undefined (nothing to wait for, not even a turn of the microtask queue) once all have started.
   */
  private waitForStartingBackends(): Promise<void> | undefined {
    let starting: Backend[] | undefined;
    for (const backend of this.deps.backends()) {
      if (!backend.firstAttemptDone && backend.state !== 'stopped') (starting ??= []).push(backend);
    }
    return starting && this.waitForBackends(starting);
  }

  private async waitForBackends(starting: Backend[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(starting.map((b) => b.firstAttempt)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, this.deps.startupWaitMs()))),
    ]);
    clearTimeout(timer);
  }

  private allowed(identity: Identity, kind: ItemKind, name: string, alias?: string): boolean {
    return this.deps.policy().decide(identity, kind, name, alias).allow;
  }

  private async list(list: ListName, kind: ItemKind, params: Record<string, unknown> | undefined, ctx: RequestContext): Promise<unknown> {
    const starting = this.waitForStartingBackends();
    if (starting) await starting;
    const { catalogue } = this.deps;
    if (this.listCacheVersion !== catalogue.version) {
      this.listCache.clear();
      this.pageCache.clear();
      this.listCacheVersion = catalogue.version;
    }
    const cacheKey = `${list}\0${ctx.identity.subject}\0${[...ctx.identity.roles].sort().join('\0')}`;
    let items = this.listCache.get(cacheKey);
    if (!items) {
      items = [];
      for (const [name, entry] of catalogue[list] as Map<string, CatalogueEntry<unknown>>) {
        if (this.allowed(ctx.identity, kind, name, entry.alias)) items.push(entry.item);
      }
      if (this.listCache.size >= LIST_CACHE_LIMIT) this.listCache.clear();
      this.listCache.set(cacheKey, items);
    }
    const offset = decodeCursor(params?.cursor);
    const pageKey = `${cacheKey}\0${offset}`;
    let serialized = this.pageCache.get(pageKey);
    if (serialized) {
      this.pageCache.delete(pageKey);
    } else {
      const page = offset === 0 && items.length <= PAGE_SIZE ? items : items.slice(offset, offset + PAGE_SIZE);
      const result: Record<string, unknown> = { [list]: page };
      if (offset + PAGE_SIZE < items.length) result.nextCursor = encodeCursor(offset + PAGE_SIZE);
      serialized = new SerializedResult(JSON.stringify(result));
      if (this.pageCache.size >= PAGE_CACHE_LIMIT) this.pageCache.delete(this.pageCache.keys().next().value!);
    }
    this.pageCache.set(pageKey, serialized);
    return serialized;
  }

  /** Resolves a tool, prompt or resource for use; hidden and missing are indistinguishable to the caller. */
  private resolveNamed<T>(map: Map<string, CatalogueEntry<T>>, kind: ItemKind, name: unknown, ctx: RequestContext, missing: string): CatalogueEntry<T> {
    const entry = typeof name === 'string' ? map.get(name) : undefined;
    if (!entry) {
      this.deps.audit.info({ event: 'acl', kind, name: clip(name), subject: ctx.identity.subject, clientId: ctx.identity.clientId, decision: 'deny', rule: 'unknown' }, 'unknown item');
      throw new RpcError(ErrorCode.InvalidParams, `${missing}: ${String(name)}`);
    }
    const decision = this.deps.policy().decide(ctx.identity, kind, name as string);
    if (!decision.allow) {
      this.deps.audit.info({ event: 'acl', kind, name, backend: entry.backend.name, subject: ctx.identity.subject, clientId: ctx.identity.clientId, roles: ctx.identity.roles, decision: 'deny', rule: decision.rule }, 'acl denied');
      throw new RpcError(ErrorCode.InvalidParams, `${missing}: ${String(name)}`);
    }
    return entry;
  }

  /**
   * True when answering this request may need to send the client a request of its own (sampling,
   * elicitation, roots), which only `per-session` backends do: such requests are answered on an SSE
   * stream so the server request can travel on it.
   */
  mayRequestClient(session: FrontSession, method: string, params: Record<string, unknown> | undefined): boolean {
    const caps = session.clientCapabilities;
    if (!caps.sampling && !caps.elicitation && !caps.roots) return false;
    const { catalogue } = this.deps;
    let backend: Backend | undefined;
    if (method === 'tools/call') backend = catalogue.tools.get(String(params?.name))?.backend;
    else if (method === 'prompts/get') backend = catalogue.prompts.get(String(params?.name))?.backend;
    else if (method === 'resources/read' && typeof params?.uri === 'string') backend = catalogue.resolveUri(params.uri)?.backend;
    return backend?.config.sharing === 'per-session';
  }

  private async forward(backend: Backend, method: string, params: Record<string, unknown>, ctx: RequestContext): Promise<Record<string, unknown>> {
    ctx.useBackend(backend.name);
    try {
      const target = backend.config.sharing === 'per-session' ? await this.deps.sessionConnection(ctx.session, backend) : backend;
      const started = process.hrtime.bigint();
      try {
        return await target.request(method, params, { cancellation: ctx.cancellation, onprogress: ctx.progress });
      } finally {
        this.deps.metrics?.backendRequest(backend.name, method, Number(process.hrtime.bigint() - started) / 1e9);
      }
    } catch (error) {
      throw backendError(backend, error);
    }
  }

  /**
   * A tool call, audited twice: the ACL decision (`acl`, allow or deny with the rule) and the call
   * itself (`tool_call`, with its outcome and duration), and counted by backend and outcome.
   */
  private async callTool(params: Record<string, unknown>, ctx: RequestContext): Promise<unknown> {
    const starting = this.waitForStartingBackends();
    if (starting) await starting;
    const { identity } = ctx;
    const name = params.name;
    const entry = typeof name === 'string' ? this.deps.catalogue.tools.get(name) : undefined;
    if (!entry) {
      const who = { subject: identity.subject, clientId: identity.clientId };
      this.deps.audit.info({ event: 'acl', kind: 'tool', name: clip(name), ...who, decision: 'deny', rule: 'unknown' }, 'unknown item');
      this.deps.audit.info({ event: 'tool_call', ...who, name: clip(name), decision: 'deny', rule: 'unknown', outcome: 'unknown', durationMs: 0 }, 'tool call');
      this.deps.metrics?.toolCall('', 'unknown');
      throw new RpcError(ErrorCode.InvalidParams, `Unknown tool: ${String(name)}`);
    }
    if (ctx.note && ctx.note.tool === undefined) {
      ctx.note.backend = entry.backend.name;
      ctx.note.tool = entry.local;
    }
    const decision = this.deps.policy().decide(identity, 'tool', name as string);
    const events = toolEvents(identity, entry, name as string, decision);
    this.deps.audit.info(events.acl, decision.allow ? 'acl allowed' : 'acl denied');
    if (!decision.allow) {
      this.deps.audit.info(new RepeatedFields(events.toolCall, new ToolCallEnd('denied', 0)), 'tool call');
      this.deps.metrics?.toolCall(entry.backend.name, 'denied');
      throw new RpcError(ErrorCode.InvalidParams, `Unknown tool: ${String(name)}`);
    }
    const started = Date.now();
    const forwarded = { ...params, name: entry.local, _meta: withoutProgressToken(params._meta) };
    let outcome: ToolCallOutcome = 'error';
    try {
      const result = await this.forward(entry.backend, 'tools/call', forwarded, ctx);
      outcome = result.isError ? 'tool_error' : 'ok';
      return rewriteContentUris(result, this.deps.catalogue, entry.backend);
    } finally {
      this.deps.audit.info(new RepeatedFields(events.toolCall, new ToolCallEnd(outcome, Date.now() - started)), 'tool call');
      this.deps.metrics?.toolCall(entry.backend.name, outcome);
    }
  }

  private async getPrompt(params: Record<string, unknown>, ctx: RequestContext): Promise<unknown> {
    const starting = this.waitForStartingBackends();
    if (starting) await starting;
    const entry = this.resolveNamed(this.deps.catalogue.prompts, 'prompt', params.name, ctx, 'Unknown prompt');
    const result = await this.forward(entry.backend, 'prompts/get', { ...params, name: entry.local, _meta: withoutProgressToken(params._meta) }, ctx);
    if (Array.isArray(result.messages)) {
      return {
        ...result,
        messages: result.messages.map((message: Record<string, unknown>) =>
          message && typeof message.content === 'object' ? { ...message, content: rewriteBlock(message.content as Record<string, unknown>, this.deps.catalogue, entry.backend) } : message),
      };
    }
    return result;
  }

  /** Resolves an exposed resource URI: a listed resource, or one matching a listed template. */
  private resolveResource(uri: unknown, ctx: RequestContext): { backend: Backend; local: string; exposed: string } {
    const resolved = typeof uri === 'string' ? this.deps.catalogue.resolveUri(uri) : undefined;
    if (!resolved || !this.allowed(ctx.identity, 'resource', resolved.exposed, resolved.alias)) {
      const rule = resolved ? this.deps.policy().decide(ctx.identity, 'resource', resolved.exposed, resolved.alias).rule : 'unknown';
      this.deps.audit.info({ event: 'acl', kind: 'resource', name: clip(uri), ...(resolved ? { backend: resolved.backend.name } : {}), subject: ctx.identity.subject, clientId: ctx.identity.clientId, ...(resolved ? { roles: ctx.identity.roles } : {}), decision: 'deny', rule }, 'resource refused');
      throw new RpcError(ErrorCode.InvalidParams, `Resource not found: ${String(uri)}`);
    }
    return resolved;
  }

  private async readResource(params: Record<string, unknown>, ctx: RequestContext): Promise<unknown> {
    const starting = this.waitForStartingBackends();
    if (starting) await starting;
    const { backend, local } = this.resolveResource(params.uri, ctx);
    const result = await this.forward(backend, 'resources/read', { ...params, uri: local, _meta: withoutProgressToken(params._meta) }, ctx);
    if (Array.isArray(result.contents)) {
      return {
        ...result,
        contents: result.contents.map((content: Record<string, unknown>) =>
          typeof content?.uri === 'string' ? { ...content, uri: this.deps.catalogue.exposeUri(backend, content.uri) } : content),
      };
    }
    return result;
  }

  private async subscription(method: string, params: Record<string, unknown>, ctx: RequestContext): Promise<unknown> {
    const { backend, local, exposed: uri } = this.resolveResource(params.uri, ctx);
    if (method === 'resources/subscribe') ctx.session.subscriptions.add(uri);
    else ctx.session.subscriptions.delete(uri);
    if (!backend.capabilities.resources?.subscribe) {
      throw new RpcError(ErrorCode.MethodNotFound, `${backend.name}: resource subscriptions are not supported by this backend`);
    }
    await this.forward(backend, method, { uri: local }, ctx);
    return {};
  }

  private async complete(params: Record<string, unknown>, ctx: RequestContext): Promise<unknown> {
    const ref = (params.ref ?? {}) as Record<string, unknown>;
    if (ref.type === 'ref/prompt') {
      const entry = this.resolveNamed(this.deps.catalogue.prompts, 'prompt', ref.name, ctx, 'Unknown prompt');
      return this.forward(entry.backend, 'completion/complete', { ...params, ref: { ...ref, name: entry.local } }, ctx);
    }
    if (ref.type === 'ref/resource') {
      const { backend, local } = this.resolveResource(ref.uri, ctx);
      return this.forward(backend, 'completion/complete', { ...params, ref: { ...ref, uri: local } }, ctx);
    }
    throw new RpcError(ErrorCode.InvalidParams, 'completion/complete needs a ref of type "ref/prompt" or "ref/resource"');
  }

  /**
   * The level is kept per session (notifications are filtered per session) and backends that log
   * are set to the most verbose level any session asked for.
   */
  private async setLevel(params: Record<string, unknown>, ctx: RequestContext): Promise<unknown> {
    const level = params.level as LoggingLevel;
    if (!LOG_LEVELS.includes(level)) throw new RpcError(ErrorCode.InvalidParams, `Invalid logging level: ${String(params.level)}`);
    ctx.session.logLevel = level;
    const backends = this.deps.backends().filter((b) => b.state === 'ready' && b.capabilities.logging);
    await Promise.all(backends.map((b) => b.request('logging/setLevel', { level }).catch(() => undefined)));
    return {};
  }

  /** True when a logging notification at `level` should reach `session`. */
  static wantsLog(session: FrontSession, level: unknown): boolean {
    if (!session.logLevel) return true;
    const index = LOG_LEVELS.indexOf(level as LoggingLevel);
    return index === -1 || index >= LOG_LEVELS.indexOf(session.logLevel);
  }
}

/** The audit fields of one identity's calls of one tool with one ACL decision. */
interface ToolEvents {
  decision: AclDecision;
  /** The `acl` event. */
  acl: Record<string, unknown>;
  /** The `tool_call` event without its outcome and duration. */
  toolCall: Record<string, unknown>;
}

/** The changing part of a `tool_call` event: its outcome (one of a few fixed words) and duration. */
class ToolCallEnd extends SelfSerializingFields {
  constructor(readonly outcome: ToolCallOutcome, readonly durationMs: number) {
    super();
  }

  jsonMembers(): string {
    return `,"outcome":"${this.outcome}","durationMs":${this.durationMs}`;
  }

  toJSON(): Record<string, unknown> {
    return { outcome: this.outcome, durationMs: this.durationMs };
  }
}

/** The events of a shared identity's tool calls, by catalogue entry (cleared when full). */
const toolEventsOf = perIdentity((_identity: Identity, shared) => (shared ? new Map<CatalogueEntry<unknown>, ToolEvents>() : undefined));
const TOOL_EVENTS_PER_IDENTITY = 4096;

/**
 * The fields of a tool call's `acl` and `tool_call` events. For a shared identity (one per
 * credential) the same frozen objects per catalogue entry and decision, so the logger serializes
 * them once.
 */
function toolEvents(identity: Identity, entry: CatalogueEntry<unknown>, name: string, decision: AclDecision): ToolEvents {
  const build = (): ToolEvents => {
    const verdict = decision.allow ? 'allow' : 'deny';
    return {
      decision,
      acl: { event: 'acl', kind: 'tool', name, backend: entry.backend.name, tool: entry.local, subject: identity.subject, clientId: identity.clientId, roles: identity.roles, decision: verdict, rule: decision.rule },
      toolCall: { event: 'tool_call', subject: identity.subject, clientId: identity.clientId, backend: entry.backend.name, tool: entry.local, decision: verdict, rule: decision.rule },
    };
  };
  const events = toolEventsOf(identity);
  if (!events) return build();
  const known = events.get(entry);
  if (known && known.decision === decision) return known;
  const fresh = build();
  Object.freeze(fresh.acl);
  Object.freeze(fresh.toolCall);
  if (events.size >= TOOL_EVENTS_PER_IDENTITY) events.clear();
  events.set(entry, fresh);
  return fresh;
}

/** A client-supplied name for the audit log: a string of bounded length, whatever was sent. */
function clip(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function withoutProgressToken(meta: unknown): Record<string, unknown> | undefined {
  if (!meta || typeof meta !== 'object') return undefined;
  const { progressToken: _dropped, ...rest } = meta as Record<string, unknown>;
  return Object.keys(rest).length ? rest : undefined;
}

/** Backend errors keep their JSON-RPC code and data; the message says which backend answered. */
function backendError(backend: Backend, error: unknown): RpcError {
  if (error instanceof McpError) {
    const message = error.message.replace(/^MCP error -?\d+: /, '');
    return new RpcError(error.code, `${backend.name}: ${message}`, error.data);
  }
  if (error instanceof Error && error.name === 'AbortError') return new RpcError(ErrorCode.RequestTimeout, `${backend.name}: request cancelled`);
  const message = error instanceof Error ? error.message : String(error);
  return new RpcError(ErrorCode.InternalError, `${backend.name}: ${message}`);
}

function rewriteBlock(block: Record<string, unknown>, catalogue: Catalogue, backend: Backend): Record<string, unknown> {
  if (block?.type === 'resource_link' && typeof block.uri === 'string') {
    return { ...block, uri: catalogue.exposeUri(backend, block.uri) };
  }
  if (block?.type === 'resource' && block.resource && typeof (block.resource as Record<string, unknown>).uri === 'string') {
    const resource = block.resource as Record<string, unknown>;
    return { ...block, resource: { ...resource, uri: catalogue.exposeUri(backend, resource.uri as string) } };
  }
  return block;
}

/** Resource links and embedded resources point at the gateway's URIs, so clients can read them back through it. */
function rewriteContentUris(result: Record<string, unknown>, catalogue: Catalogue, backend: Backend): Record<string, unknown> {
  const content = result.content;
  if (!Array.isArray(content) || !content.some((b) => b?.type === 'resource_link' || b?.type === 'resource')) return result;
  return { ...result, content: content.map((block) => rewriteBlock(block, catalogue, backend)) };
}

function encodeCursor(offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset })).toString('base64url');
}

function decodeCursor(cursor: unknown): number {
  if (cursor === undefined || cursor === null) return 0;
  try {
    const parsed = JSON.parse(Buffer.from(String(cursor), 'base64url').toString('utf8')) as { o?: unknown };
    if (typeof parsed.o === 'number' && Number.isInteger(parsed.o) && parsed.o >= 0) return parsed.o;
  } catch {
    // fall through
  }
  throw new RpcError(ErrorCode.InvalidParams, 'Invalid cursor');
}
