import type { AclConfig } from '../config/types.js';
import { compileAcl, type AclDecision, type CompiledAcl, type ItemKind } from './compile.js';
import { isSharedIdentity, perIdentity } from '../auth/types.js';

export type { AclDecision, ItemKind } from './compile.js';
export { compileToolFilter } from './compile.js';

/** Who is asking, as far as the ACL cares. */
export interface AclSubject {
  subject: string;
  roles: readonly string[];
}

export interface AccessPolicyOptions {
  /** Bound of the decision cache (entries); the cache is cleared when it is full. Default 50,000. */
  cacheSize?: number;
}

/** Bound of the decisions kept with one identity (cleared when full). */
const PER_IDENTITY_CACHE_SIZE = 4096;

const NO_ACL: AclDecision = Object.freeze({ allow: true, rule: 'no acl' });
const DEFAULT_ALLOW: AclDecision = Object.freeze({ allow: true, rule: 'default' });
const DEFAULT_DENY: AclDecision = Object.freeze({ allow: false, rule: 'default' });

/**
 * The one ACL decision function (DESIGN.md §9), used for listing and for calls alike.
 *
 * Precedence, in order:
 * 1. No `acl` block at all → allow everything (`no acl`).
 * 2. `acl.rules` in order; the first rule that matches decides (`rules[N]`, its `policy`).
 *    A rule matches when ALL of these hold:
 *    - `subjects` is empty/absent, or one of its globs matches the identity's subject;
 *    - `roles` is empty/absent, or it shares at least one role with the identity (exact strings);
 *    - the rule has a glob list for this kind (`tools` for tools, `resources` for resource URIs
 *      and resource templates, `prompts` for prompts) and one of its globs matches the exposed,
 *      prefixed name or URI. A rule without a list for the kind never matches that kind.
 * 3. No rule matched → `acl.default` (`default`).
 * Backend `tools.allow/deny` filters (`compileToolFilter`) run before this, in the caller.
 *
 * Pure: no I/O, no logging (callers log decisions). Globs are compiled once in the constructor,
 * which throws on a bad rule. Decisions are cached in a bounded Map keyed by the sorted roles,
 * the subject (only when some rule looks at subjects), the kind and the name; for a shared
 * identity (see `freezeIdentity`), with the identity itself.
 */
export class AccessPolicy {
  readonly #acl: CompiledAcl | undefined;
  readonly #cache = new Map<string, AclDecision>();
  readonly #decisionsOf = perIdentity((_identity: AclSubject) => new Map<string, AclDecision>());
  readonly #cacheSize: number;

  constructor(acl: AclConfig | undefined, options: AccessPolicyOptions = {}) {
    this.#acl = acl ? compileAcl(acl) : undefined;
    this.#cacheSize = Math.max(1, options.cacheSize ?? 50_000);
  }

  /**
   * `alias` is a second spelling of the same item that globs may be written against (resources:
   * `<prefix>__<uri>` beside the exposed `<uri-prefix>+<uri>`); a rule matches if either matches.
   */
  decide(identity: AclSubject, kind: ItemKind, name: string, alias?: string): AclDecision {
    const acl = this.#acl;
    if (!acl) return NO_ACL;
    // A shared identity is the one its provider hands out for a credential on every request: its
    // decisions are kept with it, keyed by kind and name only (kinds hold no ':').
    if (alias === undefined && isSharedIdentity(identity)) {
      const decisions = this.#decisionsOf(identity);
      const key = `${kind}:${name}`;
      let decision = decisions.get(key);
      if (!decision) {
        decision = this.#decide(acl, identity, kind, name, alias);
        if (decisions.size >= PER_IDENTITY_CACHE_SIZE) decisions.clear();
        decisions.set(key, decision);
      }
      return decision;
    }
    return this.#decide(acl, identity, kind, name, alias);
  }

  #decide(acl: CompiledAcl, identity: AclSubject, kind: ItemKind, name: string, alias?: string): AclDecision {
    const roles = [...identity.roles].sort();
    // JSON keeps the key unambiguous whatever characters roles, subjects and names contain.
    const key = JSON.stringify([kind, name, alias ?? null, acl.usesSubjects ? identity.subject : null, roles]);
    const cached = this.#cache.get(key);
    if (cached) return cached;
    const decision = evaluate(acl, identity.subject, roles, kind, name, alias);
    if (this.#cache.size >= this.#cacheSize) this.#cache.clear();
    this.#cache.set(key, decision);
    return decision;
  }
}

function evaluate(acl: CompiledAcl, subject: string, roles: readonly string[], kind: ItemKind, name: string, alias?: string): AclDecision {
  for (const rule of acl.rules) {
    const items = rule.items[kind];
    if (!items) continue;
    if (rule.subjects && !rule.subjects(subject)) continue;
    if (rule.roles) {
      const ruleRoles = rule.roles;
      if (!roles.some((role) => ruleRoles.has(role))) continue;
    }
    if (!items(name) && (alias === undefined || !items(alias))) continue;
    return rule.decision;
  }
  return acl.default === 'allow' ? DEFAULT_ALLOW : DEFAULT_DENY;
}
