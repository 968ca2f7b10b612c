import picomatch from 'picomatch';
import type { AclConfig, AclPolicy, AclRuleConfig, ToolFilterConfig } from '../config/types.js';

/**
 * Compiles ACL rules and backend tool filters into matcher functions, once, at load
 * (STYLE.md habit 2). The only module that imports picomatch. Decisions are made in `decide.ts`.
 *
 * Glob semantics, the same for every list (subjects, tools, resources, prompts, backend filters):
 * - `/` is an ordinary character: `*` matches any run of characters INCLUDING `/`, and `?` any one
 *   character. Tool and prompt names never contain `/`, but resource URIs do
 *   (`demo://resource/static/document/1`) and subjects may (`system:serviceaccount:ns/name`).
 *   picomatch's path semantics would make `x__file:///tmp/*` miss `x__file:///tmp/a/b` and, worse,
 *   even its `bash` mode refuses to let `*` cross a `..` or `.` segment, so a deny rule `fs__*`
 *   would NOT match `fs__file:///a/../b` (fail open). So every `/` is swapped for a private-use
 *   character (U+E000) in the pattern at compile time and in the value at match time, leaving
 *   picomatch nothing path-like to treat specially. `**` is then the same as `*`. URIs are matched
 *   as plain strings: no `..` normalisation. (A value containing U+E000 itself matches as if that
 *   character were `/`, which no glob can exploit beyond what `*` already allows.)
 * - `{a,b}`, `[abc]`, extglobs `@(a|b)` and `\` escapes work as in picomatch.
 * - `dot: true`: a leading `.` is not special (these are names, not file paths).
 * - Case-sensitive (`nocase: false`): MCP names and OAuth subjects are case-sensitive.
 * - `nonegate: true`, and a pattern starting with `!` is refused: inside an any-of list
 *   `["a*", "!ab*"]` would match everything; exceptions are written as an earlier deny rule.
 * - `strictBrackets: true`: an unbalanced `[`, `(` or `{` is a config error, not a literal.
 * - `windows: false`: never treat `\` as a path separator, whatever the host OS.
 */
const GLOB_OPTIONS: picomatch.PicomatchOptions = Object.freeze({
  dot: true,
  nocase: false,
  nonegate: true,
  strictBrackets: true,
  windows: false,
});

/** Stands in for `/` on both sides of a match (see above). */
const SLASH = '\uE000';
const flatten = (value: string): string => (value.includes('/') ? value.replaceAll('/', SLASH) : value);

/** What an ACL entry can be about. Resource templates count as `resource`. */
export type ItemKind = 'tool' | 'resource' | 'prompt';

/**
 * An access decision and the rule that made it: `rules[N]` (index into `acl.rules`), `default`,
 * `no acl`, `backend allow-list` or `backend deny-list`.
 */
export interface AclDecision {
  allow: boolean;
  rule: string;
}

/** A predicate over strings. */
export type Matcher = (value: string) => boolean;

/** One ACL rule in runtime form. `undefined` means "any" for subjects/roles and "never" for a kind. */
export interface CompiledRule {
  /** `rules[N]`. */
  readonly label: string;
  readonly policy: AclPolicy;
  /** The (frozen, shared) decision this rule makes when it matches. */
  readonly decision: AclDecision;
  readonly subjects?: Matcher;
  readonly roles?: ReadonlySet<string>;
  readonly items: Readonly<Record<ItemKind, Matcher | undefined>>;
}

/** The ACL in runtime form. */
export interface CompiledAcl {
  readonly default: AclPolicy;
  readonly rules: readonly CompiledRule[];
  /** True when some rule restricts subjects (the decision cache then keys on the subject). */
  readonly usesSubjects: boolean;
}

/**
 * Compiles a glob list into one predicate (true when any glob matches). `where` names the config
 * location for error messages, e.g. `acl.rules[2].tools`. Throws on a bad pattern.
 */
export function compileGlobs(globs: readonly string[], where: string): Matcher {
  const matchers = globs.map((glob, i) => {
    if (typeof glob !== 'string' || glob === '') throw new Error(`${where}[${i}]: a glob must be a non-empty string`);
    if (glob.startsWith('!')) {
      throw new Error(`${where}[${i}]: "${glob}": negated globs are not supported; put a "deny" rule before this one instead`);
    }
    try {
      return picomatch(flatten(glob), GLOB_OPTIONS);
    } catch (err) {
      throw new Error(`${where}[${i}]: "${glob}" is not a valid glob: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  if (matchers.length === 1) {
    const only = matchers[0] as Matcher;
    return (value) => only(flatten(value));
  }
  return (value) => {
    const flat = flatten(value);
    return matchers.some((m) => m(flat));
  };
}

function compileRule(rule: AclRuleConfig, index: number): CompiledRule {
  const label = `rules[${index}]`;
  const where = `acl.${label}`;
  const list = (globs: string[] | undefined, key: string): Matcher | undefined =>
    globs === undefined ? undefined : compileGlobs(globs, `${where}.${key}`);
  if (rule.policy !== 'allow' && rule.policy !== 'deny') throw new Error(`${where}.policy must be "allow" or "deny"`);
  if (rule.tools === undefined && rule.resources === undefined && rule.prompts === undefined) {
    throw new Error(`${where}: a rule needs at least one of "tools", "resources", "prompts"`);
  }
  return Object.freeze({
    label,
    policy: rule.policy,
    decision: Object.freeze({ allow: rule.policy === 'allow', rule: label }),
    // Empty or absent subjects/roles mean "anyone".
    subjects: rule.subjects && rule.subjects.length > 0 ? list(rule.subjects, 'subjects') : undefined,
    roles: rule.roles && rule.roles.length > 0 ? new Set(rule.roles) : undefined,
    // An absent list means the rule says nothing about that kind; an empty list matches nothing.
    items: Object.freeze({
      tool: list(rule.tools, 'tools'),
      resource: list(rule.resources, 'resources'),
      prompt: list(rule.prompts, 'prompts'),
    }),
  });
}

/** Compiles an `acl` block; throws an Error naming the first bad rule or glob. */
export function compileAcl(acl: AclConfig): CompiledAcl {
  if (acl.default !== 'allow' && acl.default !== 'deny') throw new Error('acl.default must be "allow" or "deny"');
  const rules = acl.rules.map(compileRule);
  return Object.freeze({
    default: acl.default,
    rules: Object.freeze(rules),
    usesSubjects: rules.some((r) => r.subjects !== undefined),
  });
}

const BACKEND_DENY: AclDecision = Object.freeze({ allow: false, rule: 'backend deny-list' });
const BACKEND_NOT_ALLOWED: AclDecision = Object.freeze({ allow: false, rule: 'backend allow-list' });

/**
 * A backend's identity-independent `tools.allow` / `tools.deny` filter, over the backend's
 * ORIGINAL (unprefixed) tool names. It applies before the ACL, for everyone. A name matching a
 * deny glob is refused (`backend deny-list`) even if it also matches an allow glob; when `allow`
 * is non-empty a name must match one of its globs (`backend allow-list`). Returns `null` when the
 * name passes. Throws at compile time on a bad glob.
 */
export function compileToolFilter(filter: ToolFilterConfig): (localToolName: string) => AclDecision | null {
  const deny = filter.deny && filter.deny.length > 0 ? compileGlobs(filter.deny, 'tools.deny') : undefined;
  const allow = filter.allow && filter.allow.length > 0 ? compileGlobs(filter.allow, 'tools.allow') : undefined;
  if (!deny && !allow) return () => null;
  return (name) => {
    if (deny && deny(name)) return BACKEND_DENY;
    if (allow && !allow(name)) return BACKEND_NOT_ALLOWED;
    return null;
  };
}
