import type { Tool, Resource, ResourceTemplate, Prompt } from '@modelcontextprotocol/sdk/types.js';
import type { Backend } from '../backends/backend.js';
import { compileToolFilter } from '../acl/compile.js';
import { exposeName, exposeUri, longestFirst, splitExposed, splitExposedUri, uriPrefix } from './names.js';

export interface CatalogueEntry<T> {
  backend: Backend;
  /** The backend's own name or URI. */
  local: string;
  /** What clients see: a shallow copy with the name or URI prefixed. */
  item: T;
  /** For resources: the `<prefix>__<uri>` alias that ACL globs may also be written against. */
  alias?: string;
}

export interface CatalogueProblem {
  backend: string;
  kind: 'collision' | 'too-long';
  name: string;
  message: string;
}

/**
 * The aggregated, prefixed view of every backend's lists, kept in memory and rebuilt only when a
 * backend's lists change (never per request). `version` increases on every rebuild so per-identity
 * list caches can tell when they are stale.
 */
export class Catalogue {
  version = 0;
  tools = new Map<string, CatalogueEntry<Tool>>();
  prompts = new Map<string, CatalogueEntry<Prompt>>();
  resources = new Map<string, CatalogueEntry<Resource>>();
  resourceTemplates = new Map<string, CatalogueEntry<ResourceTemplate>>();
  problems: CatalogueProblem[] = [];
  private byPrefix = new Map<string, Backend>();
  private prefixes: string[] = [];
  private byUriPrefix = new Map<string, Backend>();
  private uriPrefixes: string[] = [];
  /** Backends whose URI prefix equals an earlier backend's: their resources are not exposed. */
  private uriPrefixClashes = new Map<string, string>();
  private filters = new Map<string, ReturnType<typeof compileToolFilter>>();

  constructor(private readonly nameMaxLength: number) {}

  setBackends(backends: readonly Backend[]): void {
    this.byPrefix = new Map(backends.map((b) => [b.config.prefix, b]));
    this.prefixes = longestFirst(this.byPrefix.keys());
    this.byUriPrefix = new Map();
    this.uriPrefixClashes = new Map();
    for (const backend of backends) {
      const key = uriPrefix(backend.config.prefix);
      const owner = this.byUriPrefix.get(key);
      if (owner) this.uriPrefixClashes.set(backend.name, owner.name);
      else this.byUriPrefix.set(key, backend);
    }
    this.uriPrefixes = longestFirst(this.byUriPrefix.keys());
    this.filters = new Map(backends.map((b) => [b.name, compileToolFilter(b.config.tools)]));
  }

  backendForPrefix(prefix: string): Backend | undefined {
    return this.byPrefix.get(prefix);
  }

  /**
   * Splits an exposed resource URI (or template) into its backend and the backend's URI. Accepts
   * the exposed `<uri-prefix>+<uri>` form and the `<prefix>__<uri>` alias; `exposed` and `alias`
   * are the canonical forms of both, for ACL decisions and subscriptions.
   */
  resolveUri(uri: string): { backend: Backend; local: string; exposed: string; alias: string } | undefined {
    const viaPlus = splitExposedUri(uri, this.uriPrefixes);
    if (viaPlus) {
      const backend = this.byUriPrefix.get(viaPlus.uriPrefix)!;
      return { backend, local: viaPlus.local, exposed: uri, alias: exposeName(backend.config.prefix, viaPlus.local) };
    }
    const viaAlias = splitExposed(uri, this.prefixes);
    const backend = viaAlias && this.byPrefix.get(viaAlias.prefix);
    if (!viaAlias || !backend || this.uriPrefixClashes.has(backend.name)) return undefined;
    return { backend, local: viaAlias.local, exposed: exposeUri(backend.config.prefix, viaAlias.local), alias: uri };
  }

  /** Exposed form of a backend's URI. */
  exposeUri(backend: Backend, uri: string): string {
    return exposeUri(backend.config.prefix, uri);
  }

  /** Rebuilds every map from the backends' current lists. Returns which kinds changed. */
  rebuild(backends: readonly Backend[]): { tools: boolean; prompts: boolean; resources: boolean } {
    const problems: CatalogueProblem[] = [];
    const tools = new Map<string, CatalogueEntry<Tool>>();
    const prompts = new Map<string, CatalogueEntry<Prompt>>();
    const resources = new Map<string, CatalogueEntry<Resource>>();
    const resourceTemplates = new Map<string, CatalogueEntry<ResourceTemplate>>();
    for (const backend of backends) {
      if (backend.state === 'disabled' || backend.state === 'stopped') continue;
      const { prefix } = backend.config;
      const filter = this.filters.get(backend.name);
      for (const tool of backend.lists.tools) {
        if (filter?.(tool.name)) continue;
        const name = exposeName(prefix, tool.name);
        if (!this.admit(tools, name, backend, problems)) continue;
        tools.set(name, { backend, local: tool.name, item: { ...tool, name, description: tagDescription(backend.name, tool.description) } });
      }
      for (const prompt of backend.lists.prompts) {
        const name = exposeName(prefix, prompt.name);
        if (!this.admit(prompts, name, backend, problems)) continue;
        prompts.set(name, { backend, local: prompt.name, item: { ...prompt, name, description: tagDescription(backend.name, prompt.description) } });
      }
      const clash = this.uriPrefixClashes.get(backend.name);
      if (clash && (backend.lists.resources.length || backend.lists.resourceTemplates.length)) {
        problems.push({ backend: backend.name, kind: 'collision', name: uriPrefix(prefix), message: `resource URIs of "${backend.name}" would start "${uriPrefix(prefix)}+", like those of "${clash}"; its resources are not exposed (give one of them another "prefix")` });
        continue;
      }
      for (const resource of backend.lists.resources) {
        const uri = exposeUri(prefix, resource.uri);
        if (resources.has(uri)) continue;
        resources.set(uri, { backend, local: resource.uri, item: { ...resource, uri }, alias: exposeName(prefix, resource.uri) });
      }
      for (const template of backend.lists.resourceTemplates) {
        const uriTemplate = exposeUri(prefix, template.uriTemplate);
        if (resourceTemplates.has(uriTemplate)) continue;
        resourceTemplates.set(uriTemplate, { backend, local: template.uriTemplate, item: { ...template, uriTemplate }, alias: exposeName(prefix, template.uriTemplate) });
      }
    }
    const changed = {
      tools: !sameKeys(this.tools, tools) || changedItems(this.tools, tools),
      prompts: !sameKeys(this.prompts, prompts) || changedItems(this.prompts, prompts),
      resources: !sameKeys(this.resources, resources) || !sameKeys(this.resourceTemplates, resourceTemplates)
        || changedItems(this.resources, resources) || changedItems(this.resourceTemplates, resourceTemplates),
    };
    this.tools = tools;
    this.prompts = prompts;
    this.resources = resources;
    this.resourceTemplates = resourceTemplates;
    this.problems = problems;
    this.version++;
    return changed;
  }

  /**
   * Names over the client budget are left out (several clients reject the whole list when one
   * name is too long) and duplicates keep the first; both are reported, never silently merged.
   */
  private admit(map: Map<string, unknown>, name: string, backend: Backend, problems: CatalogueProblem[]): boolean {
    if (name.length > this.nameMaxLength) {
      problems.push({ backend: backend.name, kind: 'too-long', name, message: `"${name}" is ${name.length} characters, over the ${this.nameMaxLength}-character budget; it is not exposed (shorten the backend's "prefix" or filter the tool out)` });
      return false;
    }
    if (map.has(name)) {
      problems.push({ backend: backend.name, kind: 'collision', name, message: `"${name}" is listed twice; only the first is exposed` });
      return false;
    }
    return true;
  }
}

function tagDescription(backend: string, description: string | undefined): string {
  return description ? `[${backend}] ${description}` : `[${backend}]`;
}

function sameKeys(a: Map<string, unknown>, b: Map<string, unknown>): boolean {
  if (a.size !== b.size) return false;
  for (const key of a.keys()) if (!b.has(key)) return false;
  return true;
}

/** Cheap change detection: the same backend list objects mean nothing changed for that entry. */
function changedItems<T>(a: Map<string, CatalogueEntry<T>>, b: Map<string, CatalogueEntry<T>>): boolean {
  for (const [key, entry] of b) {
    const before = a.get(key);
    if (!before || before.backend !== entry.backend || JSON.stringify(before.item) !== JSON.stringify(entry.item)) return true;
  }
  return false;
}
