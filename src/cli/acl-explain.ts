import { AccessPolicy } from '../acl/decide.js';
import { compileToolFilter, type AclDecision, type ItemKind } from '../acl/compile.js';
import { loadConfig } from '../config/load.js';
import type { BackendConfig, GatewayConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';
import { exposeName, exposeUri, longestFirst, splitExposed, splitExposedUri, uriPrefix } from '../mcp/names.js';

/**
 * `mcp acl explain`: the decision for one identity and one exposed name, and the rule that made
 * it, computed by the same code the gateway runs (backend `tools.allow/deny` filter first, for
 * tools, then `AccessPolicy.decide`). `--all` lists everything the identity would see, from the
 * live catalogue (backends are started and listed).
 *
 * Exit codes: 0 when the question was answered (whatever the decision), 1 for a bad flag
 * combination, and 1 for `--all` when some backend could not be listed (the answer is then
 * incomplete; the items from the other backends are still printed). Config errors are thrown
 * (`ConfigError` / `UserError`) for the CLI entry to print.
 */

/** What `listCatalogue` from `src/mcp/probe.ts` returns, as far as this command reads it (exposed, prefixed names). */
export interface Catalogue {
  tools: { name: string; backend: string; localName: string }[];
  resources: { uri: string; backend: string }[];
  resourceTemplates: { uriTemplate: string; backend: string }[];
  prompts: { name: string; backend: string }[];
  errors: { backend: string; message: string }[];
}
export type ListCatalogue = (config: GatewayConfig) => Promise<Catalogue>;

export interface AclExplainOptions {
  config?: string;
  subject: string;
  roles: string[];
  tool?: string;
  resource?: string;
  prompt?: string;
  all?: boolean;
  json?: boolean;
  /** Where results go (default stdout). */
  out?: NodeJS.WritableStream;
  /** Where notes and usage errors go (default stderr). */
  err?: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
  /** Catalogue source for `--all` (default: `listCatalogue` from src/mcp/probe.ts); for tests. */
  listCatalogue?: ListCatalogue;
}

/** How an item is labelled in the output; resource templates are decided as `resource`. */
type Label = 'tool' | 'resource' | 'template' | 'prompt';

interface Explained {
  kind: Label;
  name: string;
  backend?: string;
  allow: boolean;
  rule: string;
}

const KIND_OF: Record<Label, ItemKind> = { tool: 'tool', resource: 'resource', template: 'resource', prompt: 'prompt' };

export async function aclExplainCommand(options: AclExplainOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const err = options.err ?? process.stderr;
  const subject = options.subject ?? '';
  const roles = (options.roles ?? []).flatMap((r) => r.split(',')).map((r) => r.trim()).filter((r) => r !== '');

  const single: [Label, string][] = [];
  if (options.tool !== undefined) single.push(['tool', options.tool]);
  if (options.resource !== undefined) single.push(['resource', options.resource]);
  if (options.prompt !== undefined) single.push(['prompt', options.prompt]);
  if (single.length === 0 && !options.all) {
    err.write('mcp acl explain: say what to explain: --tool NAME, --resource URI, --prompt NAME or --all\n');
    return 1;
  }
  if (subject === '') {
    err.write('mcp acl explain: --subject must not be empty\n');
    return 1;
  }

  const { config } = await loadConfig({ path: options.config, env: options.env });
  const explainer = new Explainer(config, { subject, roles });

  const results: Explained[] = [];
  for (const [kind, name] of single) {
    const item = explainer.explain(kind, name);
    if (item.backend === undefined) {
      err.write(`note: no enabled backend exposes "${name}" (no prefix matches); showing the ACL decision alone\n`);
    }
    results.push(item);
  }

  let errors: Catalogue['errors'] = [];
  let all: Explained[] | undefined;
  if (options.all) {
    const list = options.listCatalogue ?? (await loadProbe());
    const catalogue = await list(config);
    errors = catalogue.errors;
    all = [
      ...catalogue.tools.map((tool) => explainer.explain('tool', tool.name, tool.backend, tool.localName)),
      ...catalogue.resources.map((r) => explainer.explain('resource', r.uri, r.backend)),
      ...catalogue.resourceTemplates.map((r) => explainer.explain('template', r.uriTemplate, r.backend)),
      ...catalogue.prompts.map((p) => explainer.explain('prompt', p.name, p.backend)),
    ];
  }

  if (options.json) {
    const doc: Record<string, unknown> = { subject, roles, decisions: results };
    if (all) Object.assign(doc, { items: all, errors });
    out.write(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    for (const item of results) out.write(`${line(item)}\n`);
    if (all) {
      const visible = all.filter((item) => item.allow);
      for (const item of visible) out.write(`${line(item)}\n`);
      out.write(`# ${subject} [${roles.join(', ')}] sees ${visible.length} of ${all.length} items (${all.length - visible.length} hidden)\n`);
    }
  }
  for (const e of errors) err.write(`warning: backend "${e.backend}" could not be listed: ${e.message}\n`);
  return errors.length > 0 ? 1 : 0;
}

/** `allow  tool everything__echo  (rules[0])` */
function line(item: Explained): string {
  return `${item.allow ? 'allow' : 'deny'}  ${item.kind} ${item.name}  (${item.rule})`;
}

/** Holds the compiled policy and backend filters for one config and one identity. */
class Explainer {
  readonly #policy: AccessPolicy;
  readonly #identity: { subject: string; roles: string[] };
  readonly #byPrefix = new Map<string, BackendConfig>();
  readonly #byName = new Map<string, BackendConfig>();
  readonly #prefixes: string[];
  readonly #byUriPrefix = new Map<string, BackendConfig>();
  readonly #uriPrefixes: string[];
  readonly #filters = new Map<string, (local: string) => AclDecision | null>();

  constructor(config: GatewayConfig, identity: { subject: string; roles: string[] }) {
    const source = config.sourcePath ?? 'MCP_SERVERS_CONFIG';
    try {
      this.#policy = new AccessPolicy(config.acl);
      for (const backend of config.backends) {
        if (!backend.enabled) continue;
        this.#byPrefix.set(backend.prefix, backend);
        if (!this.#byUriPrefix.has(uriPrefix(backend.prefix))) this.#byUriPrefix.set(uriPrefix(backend.prefix), backend);
        this.#byName.set(backend.name, backend);
        this.#filters.set(backend.name, compileToolFilter(backend.tools ?? {}));
      }
    } catch (error) {
      // Bad globs are configuration errors: report them like the loader does.
      throw new ConfigError(source, [{ path: '/acl', message: (error as Error).message, severity: 'error' }]);
    }
    this.#identity = identity;
    this.#prefixes = longestFirst(this.#byPrefix.keys());
    this.#uriPrefixes = longestFirst(this.#byUriPrefix.keys());
  }

  /** A resource URI in its exposed `<uri-prefix>+<uri>` form and its `<prefix>__<uri>` alias, as the gateway decides it. */
  #resourceForms(uri: string): { exposed: string; alias?: string } {
    const viaPlus = splitExposedUri(uri, this.#uriPrefixes);
    if (viaPlus) return { exposed: uri, alias: exposeName(this.#byUriPrefix.get(viaPlus.uriPrefix)!.prefix, viaPlus.local) };
    const viaAlias = splitExposed(uri, this.#prefixes);
    if (viaAlias) return { exposed: exposeUri(viaAlias.prefix, viaAlias.local), alias: uri };
    return { exposed: uri };
  }

  /**
   * Decides one exposed name. For tools the backend filter (over the backend's own tool name)
   * runs first; `backend`/`localName` come from the catalogue when known, else from the prefix.
   */
  explain(kind: Label, name: string, backendName?: string, localName?: string): Explained {
    let backend = backendName !== undefined ? this.#byName.get(backendName) : undefined;
    let local = localName;
    if (!backend) {
      const split = splitExposed(name, this.#prefixes);
      if (split) {
        backend = this.#byPrefix.get(split.prefix);
        local ??= split.local;
      }
    }
    if (kind === 'tool' && backend && local !== undefined) {
      const filtered = this.#filters.get(backend.name)?.(local);
      if (filtered) return { kind, name, backend: backend.name, allow: filtered.allow, rule: filtered.rule };
    }
    const forms = KIND_OF[kind] === 'resource' ? this.#resourceForms(name) : { exposed: name, alias: undefined };
    const decision = this.#policy.decide(this.#identity, KIND_OF[kind], forms.exposed, forms.alias);
    return { kind, name, backend: backendName ?? backend?.name, allow: decision.allow, rule: decision.rule };
  }
}

/** Loads `listCatalogue` lazily: it pulls in the MCP SDK and the backend transports. */
async function loadProbe(): Promise<ListCatalogue> {
  const probe = await import('../mcp/probe.js');
  return (config) => probe.listCatalogue(config);
}
