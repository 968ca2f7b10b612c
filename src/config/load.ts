import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseJsonc, printParseErrorCode, visit, type ParseError } from 'jsonc-parser';
import { ConfigError, UserError, type ConfigProblem } from '../errors.js';
import { compileGlobs } from '../acl/compile.js';
import { isLoopbackAddress, parseCidr } from '../http/peer.js';
import { pointer, redactPath, tokenLabel, validateServersDocument } from '../validation.js';
import { validateRedirectPattern } from '../oauth/redirect-uri.js';
import { applyCompat } from './compat.js';
import { expandEnv } from './expand.js';
import type {
  AclConfig, BackendConfig, GatewayConfig, OAuthAsConfig, ObservabilityConfig, ProviderName, ServerAuthConfig,
} from './types.js';

/**
 * The configuration gate: servers.json text → a validated, defaulted, deep-frozen GatewayConfig.
 *
 * Steps: JSONC parse (syntax errors with line:column; duplicate keys) → `${VAR}` expansion →
 * avelino/mcp legacy-key hints (compat.ts) → JSON Schema validation with defaults (validation.ts) →
 * cross-field checks (providers ↔ blocks, CIDRs, URLs, redirect patterns, prefixes and the name
 * budget) → build → freeze. Every problem from every step is collected and reported at once.
 * No message ever quotes a value that may be a secret (tokens, jwtSecret, headers, env).
 */

export interface LoadOptions {
  /** `--config FILE`; falls back to `env.MCP_CONFIG_PATH`, then inline `env.MCP_SERVERS_CONFIG`. */
  path?: string;
  env?: NodeJS.ProcessEnv;
}

export interface LoadedConfig {
  config: GatewayConfig;
  warnings: ConfigProblem[];
}

export const INLINE_SOURCE = 'MCP_SERVERS_CONFIG';

/** Where the configuration comes from, without reading it. Throws UserError when nothing is given. */
export function resolveConfigSource(options: LoadOptions): { kind: 'file'; path: string } | { kind: 'inline'; text: string } {
  const env = options.env ?? process.env;
  const file = options.path || env.MCP_CONFIG_PATH;
  if (file) return { kind: 'file', path: path.resolve(file) };
  if (env.MCP_SERVERS_CONFIG) return { kind: 'inline', text: env.MCP_SERVERS_CONFIG };
  throw new UserError('no configuration: pass --config FILE, or set MCP_CONFIG_PATH or MCP_SERVERS_CONFIG');
}

/** Reads, validates and builds the configuration. Throws ConfigError (every problem) or UserError. */
export async function loadConfig(options: LoadOptions): Promise<LoadedConfig> {
  const env = options.env ?? process.env;
  const source = resolveConfigSource(options);
  if (source.kind === 'inline') return parseConfigText(source.text, INLINE_SOURCE, process.cwd(), env);
  let text: string;
  try {
    text = await readFile(source.path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (error as Error).message;
    throw new UserError(`cannot read config file ${source.path}: ${why}`);
  }
  return parseConfigText(text, source.path, path.dirname(source.path), env);
}

/**
 * Synchronous core (tests, SIGHUP reload). `source` names the document in messages; when it is an
 * absolute path it also becomes `config.sourcePath`. Relative paths resolve against `baseDir`.
 */
export function parseConfigText(text: string, source: string, baseDir: string, env: NodeJS.ProcessEnv): LoadedConfig {
  const problems: ConfigProblem[] = [];
  const raw = parseDocument(text, problems);
  if (raw === undefined) throw new ConfigError(source, problems);

  const expanded = expandEnv(raw, env);
  problems.push(...expanded.problems);
  const doc = expanded.value as Obj;
  problems.push(...applyCompat(doc));
  const explicit = explicitBackendKeys(doc);
  const stateStoreConfigured = isObj(doc.stateStore) || Boolean(env.MCP_AUTH_SERVER_PATH);

  const later: ConfigProblem[] = [...validateServersDocument(doc).problems];
  new Checks(later, doc).run(explicit);
  // A string whose variable is unset still holds "${VAR}": don't pile format errors on top.
  const unresolved = new Set(expanded.problems.map((p) => p.path));
  problems.push(...later.filter((p) => !unresolved.has(p.path)));

  const errors = problems.filter((p) => p.severity === 'error');
  const warnings = problems.filter((p) => p.severity === 'warning');
  if (errors.length > 0) throw new ConfigError(source, [...errors, ...warnings]);

  const config = build(doc, {
    baseDir: path.resolve(baseDir),
    sourcePath: path.isAbsolute(source) ? source : undefined,
    env,
    stateStoreConfigured,
  });
  return { config: deepFreeze(config), warnings };
}

// ---------------------------------------------------------------------------------------------
// Parsing

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return `line ${line}, column ${column}`;
}

function parseDocument(text: string, problems: ConfigProblem[]): Obj | undefined {
  const errors: ParseError[] = [];
  const value: unknown = parseJsonc(text, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false });
  for (const e of errors) {
    problems.push({ path: '', message: `syntax error at ${lineColumn(text, e.offset)}: ${describeParseError(printParseErrorCode(e.error))}`, severity: 'error' });
  }
  if (errors.length > 0) return undefined;
  if (!isObj(value)) {
    problems.push({ path: '', message: 'the configuration must be a JSON object ({"mcpServers": {...}})', severity: 'error' });
    return undefined;
  }
  // JSON allows duplicate keys and the last one silently wins: refuse them instead.
  const stack: Array<Set<string>> = [];
  visit(text, {
    onObjectBegin: () => { stack.push(new Set()); },
    onObjectEnd: () => { stack.pop(); },
    onObjectProperty: (property, offset, _length, _line, _col, pathSupplier) => {
      const seen = stack[stack.length - 1];
      if (!seen) return;
      if (seen.has(property)) {
        const parent = pathSupplier().map(String);
        const secret = parent.join('/') === 'serverAuth/bearer/tokens';
        problems.push({
          path: pointer(...parent),
          message: `duplicate key ${secret ? '(a bearer token)' : `"${property}"`} at ${lineColumn(text, offset)}: remove one of them`,
          severity: 'error',
        });
      }
      seen.add(property);
    },
  }, { allowTrailingComma: true, disallowComments: false });
  return value;
}

function describeParseError(code: string): string {
  const words = code.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
  return words.replace(/^invalid symbol$/, 'unexpected character').replace(/ expected$/, ' expected');
}

/** The keys each backend had before defaults were filled in (to catch stdio keys on remote backends). */
function explicitBackendKeys(doc: Obj): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  if (isObj(doc.mcpServers)) {
    for (const [name, backend] of Object.entries(doc.mcpServers)) {
      if (isObj(backend)) out.set(name, new Set(Object.keys(backend)));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cross-field checks. They read the document defensively: they run even when the schema failed, so
// one pass reports everything.

const STDIO_ONLY = ['args', 'env', 'cwd'];
const REMOTE_ONLY = ['headers', 'transport'];
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const REFUSED_SCHEMES = new Set(['javascript:', 'data:', 'file:', 'vbscript:', 'blob:', 'about:']);
const OAUTH_BLOCKS: Record<string, string> = { bearer: 'bearer', oauth_as: 'oauthAs', jwks: 'jwks', forwarded: 'forwarded' };

function isLoopbackHost(hostname: string): boolean {
  if (LOOPBACK_HOSTS.has(hostname)) return true;
  return isLoopbackAddress(hostname.replace(/^\[|\]$/g, ''));
}

class Checks {
  constructor(
    private readonly problems: ConfigProblem[],
    private readonly doc: Obj,
  ) {}

  private error(path: string, message: string): void {
    this.problems.push({ path: redactPath(path, this.doc), message, severity: 'error' });
  }

  private warn(path: string, message: string): void {
    this.problems.push({ path: redactPath(path, this.doc), message, severity: 'warning' });
  }

  run(explicit: Map<string, Set<string>>): void {
    this.backends(explicit);
    this.serverAuth();
    this.acl();
    this.stateStore();
    this.http();
    this.observability();
  }

  private backends(explicit: Map<string, Set<string>>): void {
    const servers = isObj(this.doc.mcpServers) ? this.doc.mcpServers : {};
    const aggregation = isObj(this.doc.aggregation) ? this.doc.aggregation : {};
    const budget = typeof aggregation.nameMaxLength === 'number' ? aggregation.nameMaxLength : 64;
    const byPrefix = new Map<string, string>();
    for (const [name, backend] of Object.entries(servers)) {
      if (!isObj(backend)) continue;
      const at = (...s: string[]) => pointer('mcpServers', name, ...s);
      const keys = explicit.get(name) ?? new Set<string>();
      const stdio = keys.has('command');
      const remote = keys.has('url');
      if (stdio !== remote) {
        for (const key of stdio ? REMOTE_ONLY : STDIO_ONLY) {
          if (keys.has(key)) {
            this.error(at(key), `"${key}" only applies to ${stdio ? 'remote backends (with "url")' : 'stdio backends (with "command")'}`);
          }
        }
      }
      if (remote && typeof backend.url === 'string') this.backendUrl(at('url'), backend.url, keys.has('headers'));
      if (isObj(backend.tools)) {
        this.globs(at('tools', 'allow'), backend.tools.allow);
        this.globs(at('tools', 'deny'), backend.tools.deny);
      }

      const prefix = typeof backend.prefix === 'string' ? backend.prefix : name;
      const prefixPath = keys.has('prefix') ? at('prefix') : at();
      if (prefix.length + 2 >= budget) {
        this.error(prefixPath, `prefix "${prefix}" plus "__" is ${prefix.length + 2} characters, leaving no room for tool names within aggregation.nameMaxLength (${budget}); set a shorter "prefix"`);
      }
      if (backend.enabled !== false) {
        const other = byPrefix.get(prefix);
        if (other !== undefined) {
          this.error(prefixPath, `prefix "${prefix}" is already used by backend "${other}": tool names would collide; set a different "prefix" on one of them`);
        } else {
          byPrefix.set(prefix, name);
        }
      }
    }
  }

  private backendUrl(at: string, value: string, hasHeaders: boolean): void {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      this.error(at, 'is not a valid URL (expected http:// or https://)');
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      this.error(at, `must be an http or https URL, not ${url.protocol}`);
      return;
    }
    if (url.protocol === 'http:' && hasHeaders && !isLoopbackHost(url.hostname)) {
      this.warn(at, 'plain http to a non-loopback host: the configured headers (often credentials) travel unencrypted');
    }
  }

  private serverAuth(): void {
    const auth = this.doc.serverAuth;
    if (auth === undefined) {
      this.warn('/serverAuth', 'no authentication configured: every client is anonymous (allowed only on a loopback bind)');
      return;
    }
    if (!isObj(auth)) return;
    const providers = strings(auth.providers);
    if (providers.includes('none')) {
      if (providers.length > 1) {
        this.error('/serverAuth/providers', '"none" (no authentication) cannot be combined with other providers: remove "none", or list it alone');
      } else {
        this.warn('/serverAuth/providers', 'no authentication configured: every client is anonymous (allowed only on a loopback bind)');
      }
    }
    providers.forEach((provider, i) => {
      const block = OAUTH_BLOCKS[provider];
      if (block && auth[block] === undefined) {
        this.error(pointer('serverAuth', 'providers', i), `"${provider}" is listed but /serverAuth/${block} is missing: add the block, or remove "${provider}"`);
      }
    });
    for (const [provider, block] of Object.entries(OAUTH_BLOCKS)) {
      if (auth[block] !== undefined && !providers.includes(provider)) {
        this.warn(pointer('serverAuth', block), `is configured but "${provider}" is not in "providers", so it is not used`);
      }
    }
    if (isObj(auth.bearer)) this.bearer(auth.bearer);
    if (isObj(auth.oauthAs)) this.oauthAs(auth.oauthAs, providers.includes('oauth_as'));
    if (isObj(auth.jwks)) this.jwks(auth.jwks);
    if (isObj(auth.forwarded)) {
      const forwarded = auth.forwarded;
      const cidrs = this.cidrs('/serverAuth/forwarded/trustedSourceCidrs', forwarded.trustedSourceCidrs);
      if (providers.includes('forwarded') && cidrs.length > 0) {
        const user = typeof forwarded.userHeader === 'string' ? forwarded.userHeader : 'x-forwarded-user';
        const groups = typeof forwarded.groupsHeader === 'string' ? forwarded.groupsHeader : 'x-forwarded-groups';
        this.warn('/serverAuth/forwarded', `identity headers "${user}" and "${groups}" on /mcp are trusted from ${cidrs.join(', ')}: make sure only your reverse proxy can reach the gateway from there, and that it strips these headers from client requests`);
      }
    }
  }

  private bearer(bearer: Obj): void {
    if (!isObj(bearer.tokens)) return;
    Object.keys(bearer.tokens).forEach((token, i) => {
      const at = pointer('serverAuth', 'bearer', 'tokens', tokenLabel(i));
      if (token.trim() === '') this.error(at, 'a bearer token is empty (is its variable set to an empty value?)');
      else if (token.length < 16) this.warn(at, 'this bearer token is shorter than 16 characters and easy to guess; generate one with "mcp secret generate"');
    });
  }

  private oauthAs(as: Obj, listed: boolean): void {
    if (typeof as.issuerUrl === 'string') this.issuerUrl('/serverAuth/oauthAs/issuerUrl', as.issuerUrl);
    if (typeof as.jwtSecret === 'string') {
      const bytes = Buffer.byteLength(as.jwtSecret, 'utf8');
      if (bytes < 32) {
        // The length only: the value is a secret.
        this.error('/serverAuth/oauthAs/jwtSecret', `must be at least 32 bytes, got ${bytes}; generate one with "mcp secret generate"`);
      }
    } else if (listed && as.jwtSecret === undefined) {
      this.warn('/serverAuth/oauthAs/jwtSecret', 'not set: a secret will be generated and stored next to the state; this does not work with several replicas');
    }
    this.cidrs('/serverAuth/oauthAs/trustedSourceCidrs', as.trustedSourceCidrs);
    if (Array.isArray(as.trustedSourceCidrs) && as.trustedSourceCidrs.length === 0) {
      this.warn('/serverAuth/oauthAs/trustedSourceCidrs', 'is empty: /oauth/authorize will refuse every sign-in');
    }
    if (Array.isArray(as.redirectUriAllowlist)) {
      as.redirectUriAllowlist.forEach((entry, i) => {
        if (typeof entry === 'string') this.redirectPattern(pointer('serverAuth', 'oauthAs', 'redirectUriAllowlist', i), entry, true);
      });
    }
    if (Array.isArray(as.clients)) this.clients(as.clients);
  }

  private clients(clients: unknown[]): void {
    const ids = new Map<string, number>();
    clients.forEach((client, i) => {
      if (!isObj(client)) return;
      const at = (...s: Array<string | number>) => pointer('serverAuth', 'oauthAs', 'clients', i, ...s);
      const id = client.client_id;
      if (typeof id === 'string') {
        if (/^https:\/\//i.test(id)) this.error(at('client_id'), 'must not be an https URL: those client_ids are fetched as Client ID Metadata Documents');
        const first = ids.get(id);
        if (first !== undefined) this.error(at('client_id'), `duplicates clients[${first}]`);
        else ids.set(id, i);
      }
      const method = client.token_endpoint_auth_method;
      const hasSecret = client.client_secret !== undefined;
      if (hasSecret && method === 'none') this.error(at('token_endpoint_auth_method'), '"none" is for public clients: remove client_secret or use "client_secret_basic"/"client_secret_post"');
      if (!hasSecret && (method === 'client_secret_basic' || method === 'client_secret_post')) this.error(at(), `"${method}" needs a client_secret`);
      strings(client.redirect_uris).forEach((uri, j) => this.redirectPattern(at('redirect_uris', j), uri, false));
    });
  }

  /** Checks one redirect URI (or allowlist pattern, where `*` is allowed in the path). */
  private redirectPattern(at: string, value: string, pattern: boolean): void {
    const before = this.problems.length;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      this.error(at, 'is not a valid absolute URL');
      return;
    }
    if (value.includes('#')) this.error(at, 'must not contain a fragment ("#")');
    if (url.username || url.password) this.error(at, 'must not contain userinfo ("user@")');
    if (REFUSED_SCHEMES.has(url.protocol)) {
      this.error(at, `the ${url.protocol} scheme is never allowed`);
      return;
    }
    if (url.hostname.includes('*')) this.error(at, '"*" is not allowed in the host: it never matches across a host boundary');
    if (!pattern && value.includes('*')) this.error(at, 'must be a concrete URI, not a pattern');
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
      this.error(at, 'http is allowed only for loopback hosts (localhost, 127.0.0.1, [::1]); use https');
      return;
    }
    // The Authorization Server compiles the allowlist with these exact rules: what passes here boots.
    if (pattern && this.problems.length === before) {
      const problem = validateRedirectPattern(value);
      if (problem) this.error(at, problem);
    }
  }

  private issuerUrl(at: string, value: string): void {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      this.error(at, 'is not a valid URL (expected e.g. "https://mcp.example.com")');
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') this.error(at, 'must be an http or https URL');
    if (url.search || value.includes('?')) this.error(at, 'must not have a query string');
    if (url.hash || value.includes('#')) this.error(at, 'must not have a fragment');
    if (url.username || url.password) this.error(at, 'must not contain userinfo');
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
      this.warn(at, 'is plain http on a non-loopback host: OAuth 2.1 requires https for the issuer');
    }
  }

  private jwks(jwks: Obj): void {
    for (const key of ['issuer', 'jwksUri']) {
      const value = jwks[key];
      if (typeof value !== 'string') continue;
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        this.error(pointer('serverAuth', 'jwks', key), 'is not a valid URL');
        continue;
      }
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
        this.error(pointer('serverAuth', 'jwks', key), 'must be an https URL (http only for loopback hosts)');
      }
    }
  }

  /** Parses every CIDR of a list with the same parser the HTTP layer uses; returns the valid ones. */
  private cidrs(at: string, value: unknown): string[] {
    const ok: string[] = [];
    if (!Array.isArray(value)) return ok;
    value.forEach((entry, i) => {
      if (typeof entry !== 'string') return;
      try {
        const [, bits] = parseCidr(entry);
        ok.push(entry);
        if (bits === 0) this.warn(`${at}/${i}`, `"${entry}" trusts every address`);
      } catch (error) {
        this.error(`${at}/${i}`, (error as Error).message);
      }
    });
    return ok;
  }

  private acl(): void {
    const auth = isObj(this.doc.serverAuth) ? this.doc.serverAuth : undefined;
    const providers = strings(auth?.providers);
    if (this.doc.acl === undefined && (providers.includes('oauth_as') || providers.includes('jwks'))) {
      this.warn('/acl', 'no acl block: every authenticated user can use every tool');
    }
    const rules = isObj(this.doc.acl) && Array.isArray(this.doc.acl.rules) ? this.doc.acl.rules : [];
    rules.forEach((rule, i) => {
      if (!isObj(rule)) return;
      for (const key of ['subjects', 'tools', 'resources', 'prompts']) this.globs(pointer('acl', 'rules', i, key), rule[key]);
    });
  }

  /** Compiles each glob with the ACL's own compiler, so a pattern it would refuse fails here. */
  private globs(at: string, value: unknown): void {
    strings(value).forEach((glob, i) => {
      if (glob === '') return; // reported by the schema
      try {
        compileGlobs([glob], '');
      } catch (error) {
        this.error(`${at}/${i}`, (error as Error).message.replace(/^\[0\]: /, ''));
      }
    });
  }

  private stateStore(): void {
    const store = this.doc.stateStore;
    if (!isObj(store)) return;
    if (store.type === 'redis') {
      if (typeof store.url !== 'string') {
        this.error('/stateStore', 'missing required key "url" (required when "type" is "redis")');
      } else if (!/^rediss?:\/\//i.test(store.url)) {
        this.error('/stateStore/url', 'must be a redis:// or rediss:// URL');
      }
    }
    if (store.type !== 'file' && store.path !== undefined) this.warn('/stateStore/path', `only used by the file store; ignored for "${String(store.type)}"`);
    if (store.type !== 'redis' && store.url !== undefined) this.warn('/stateStore/url', `only used by the redis store; ignored for "${String(store.type)}"`);
  }

  private http(): void {
    const http = isObj(this.doc.http) ? this.doc.http : {};
    strings(http.allowedOrigins).forEach((origin, i) => {
      let ok = false;
      try {
        const url = new URL(origin);
        ok = url.origin === origin && url.origin !== 'null';
      } catch {
        ok = false;
      }
      if (!ok) this.error(pointer('http', 'allowedOrigins', i), 'must be an exact origin like "https://app.example.com" (scheme://host[:port], no path or trailing slash)');
    });
  }

  private observability(): void {
    const obs = isObj(this.doc.observability) ? this.doc.observability : {};
    const metrics = isObj(obs.metrics) ? obs.metrics : {};
    if (typeof metrics.bearerToken === 'string' && metrics.bearerToken.length < 16) {
      // The length only: the value is a secret.
      this.warn('/observability/metrics/bearerToken', 'is shorter than 16 characters and easy to guess; generate one with "mcp secret generate"');
    }
    const audit = isObj(obs.audit) ? obs.audit : {};
    if (audit.destination === 'file' && typeof audit.path !== 'string') {
      this.error('/observability/audit', 'missing required key "path" (required when "destination" is "file")');
    }
    if (audit.destination !== 'file' && audit.path !== undefined) {
      this.warn('/observability/audit/path', `only used when "destination" is "file"; ignored for "${String(audit.destination ?? 'stderr')}"`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Build

interface BuildContext {
  baseDir: string;
  sourcePath?: string;
  env: NodeJS.ProcessEnv;
  /** The document has a `stateStore` block (or MCP_AUTH_SERVER_PATH is set), as opposed to the default. */
  stateStoreConfigured?: boolean;
}

function build(doc: Obj, ctx: BuildContext): GatewayConfig {
  const backends: BackendConfig[] = Object.entries(doc.mcpServers as Record<string, Obj>).map(([name, b]) => {
    const common = {
      name,
      prefix: typeof b.prefix === 'string' ? b.prefix : name,
      enabled: b.enabled as boolean,
      timeoutSeconds: b.timeoutSeconds as number,
      tools: b.tools as BackendConfig['tools'],
      sharing: b.sharing as BackendConfig['sharing'],
    };
    if (typeof b.command === 'string') {
      return {
        ...common,
        kind: 'stdio' as const,
        command: b.command,
        args: b.args as string[],
        env: b.env as Record<string, string>,
        cwd: path.resolve(ctx.baseDir, typeof b.cwd === 'string' ? b.cwd : '.'),
      };
    }
    return {
      ...common,
      kind: 'http' as const,
      url: b.url as string,
      headers: b.headers as Record<string, string>,
      transport: b.transport as 'streamable-http' | 'sse' | 'auto',
    };
  });

  const store = doc.stateStore as Obj;
  const stateStore = {
    type: store.type as 'file' | 'memory' | 'redis',
    configured: ctx.stateStoreConfigured ?? false,
    keyPrefix: store.keyPrefix as string,
    ...(store.type === 'file'
      ? {
          path: typeof store.path === 'string'
            ? path.resolve(ctx.baseDir, store.path)
            : ctx.env.MCP_AUTH_SERVER_PATH
              ? path.resolve(ctx.env.MCP_AUTH_SERVER_PATH)
              : path.join(ctx.baseDir, 'auth_server.json'),
        }
      : {}),
    ...(store.type === 'redis' ? { url: store.url as string } : {}),
  };

  return {
    ...(ctx.sourcePath !== undefined ? { sourcePath: ctx.sourcePath } : {}),
    baseDir: ctx.baseDir,
    backends,
    serverAuth: buildServerAuth(doc.serverAuth as Obj | undefined),
    ...(doc.acl !== undefined ? { acl: doc.acl as AclConfig } : {}),
    stateStore,
    http: doc.http as GatewayConfig['http'],
    aggregation: doc.aggregation as GatewayConfig['aggregation'],
    observability: buildObservability(doc.observability as Obj, ctx.baseDir),
  };
}

function buildObservability(obs: Obj, baseDir: string): ObservabilityConfig {
  const metrics = obs.metrics as Obj;
  const audit = obs.audit as Obj;
  return {
    metrics: {
      enabled: metrics.enabled as boolean,
      ...(typeof metrics.bearerToken === 'string' ? { bearerToken: metrics.bearerToken } : {}),
    },
    audit: {
      destination: audit.destination as ObservabilityConfig['audit']['destination'],
      ...(audit.destination === 'file' && typeof audit.path === 'string' ? { path: path.resolve(baseDir, audit.path) } : {}),
    },
  };
}

function buildServerAuth(auth: Obj | undefined): ServerAuthConfig {
  // No serverAuth block at all: no authentication (the serve command refuses it off loopback).
  if (auth === undefined) return { providers: ['none'] };
  const out: ServerAuthConfig = { providers: auth.providers as ProviderName[] };
  if (auth.bearer !== undefined) out.bearer = auth.bearer as ServerAuthConfig['bearer'];
  if (auth.oauthAs !== undefined) {
    const as = auth.oauthAs as unknown as OAuthAsConfig;
    out.oauthAs = { ...as, issuerUrl: as.issuerUrl.replace(/\/+$/, '') };
  }
  if (auth.jwks !== undefined) out.jwks = auth.jwks as unknown as ServerAuthConfig['jwks'];
  if (auth.forwarded !== undefined) out.forwarded = auth.forwarded as unknown as ServerAuthConfig['forwarded'];
  return out;
}

/** Freezes an object graph in place (configuration is read-only once built). */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as object)) deepFreeze(child);
  }
  return value;
}
