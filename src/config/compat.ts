import type { ConfigProblem } from '../errors.js';
import { pointer, tokenLabel } from '../validation.js';

/**
 * Legacy keys from the Rust `mcp` CLI (github.com/avelino/mcp, `mcp serve`), whose servers.json
 * Gatehouse reads with at most renamed keys. Mapped here (source: avelino/mcp `src/config.rs`,
 * `src/server_auth/mod.rs`, `src/server_auth/acl/types.rs`, `docs/reference/config-file.md`):
 *
 * | avelino/mcp                                   | Gatehouse                                   | severity |
 * | --------------------------------------------- | ------------------------------------------- | -------- |
 * | `serverAuth.provider: "bearer"` (old string)  | `serverAuth.providers: ["bearer"]`          | error (avelino/mcp ignores it and runs with NO auth) |
 * | `serverAuth.acl`                              | top-level `acl` (+ `"default": "allow"` if it had no default: theirs was allow, ours is deny) | error |
 * | `serverAuth.forwarded.header`                 | `serverAuth.forwarded.userHeader`           | error |
 * | `serverAuth.forwarded.groups_header`          | `serverAuth.forwarded.groupsHeader`         | error |
 * | `bearer.tokens: {"<token>": "alice"}`         | `{"<token>": {"subject": "alice"}}`         | error |
 * | `acl.roles` / `acl.subjects` maps, `acl.strictClassification` (role-based ACL with read/write grants) | `acl.rules` | error (no automatic rewrite) |
 * | backend `tool_acl` (read/write classification)| backend `tools.allow`/`tools.deny` or `acl.rules` | error |
 * | backend `cli`, `cli_help`, `cli_depth`, `cli_only`, array `tools` (CLI wrapping) | none | error |
 * | backend `idle_timeout`, `min_idle_timeout`, `max_idle_timeout` | none (backends stay connected) | warning, ignored |
 * | top-level `audit`                             | `observability.audit`                       | warning, ignored |
 *
 * Every other key is the same in both (`mcpServers`, `command`, `args`, `env`, `url`, `headers`,
 * `serverAuth.providers`, `bearer.tokens`, the whole `oauthAs` block, `acl.default`, `acl.rules`).
 * Differences that are not keys are reported by the normal checks: an unset `${VAR}` is an error here
 * (avelino/mcp substitutes ""), `forwarded` needs `trustedSourceCidrs`, and `jwtSecret` is optional.
 *
 * `applyCompat` rewrites the document to the Gatehouse form so that the remaining checks see what the
 * user will get after renaming, and returns one problem per legacy key. Errors still fail the load:
 * nothing that touches authentication or authorisation is accepted silently.
 */

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const PROVIDERS = new Set(['bearer', 'oauth_as', 'jwks', 'forwarded', 'none']);

const err = (path: string, message: string): ConfigProblem => ({ path, message, severity: 'error' });
const warn = (path: string, message: string): ConfigProblem => ({ path, message, severity: 'warning' });
const notOurs = (key: string) => `"${key}" is not a Gatehouse key (it comes from avelino/mcp)`;

/** Renames the keys of `obj` in place, keeping their order. */
function renameKey(obj: Obj, from: string, to: string): void {
  const entries = Object.entries(obj);
  for (const key of Object.keys(obj)) delete obj[key];
  for (const [k, v] of entries) {
    if (k === from) {
      if (!(to in Object.fromEntries(entries))) obj[to] = v;
    } else obj[k] = v;
  }
}

function compatAcl(acl: Obj, base: string, problems: ConfigProblem[]): void {
  for (const key of ['roles', 'subjects', 'strictClassification'].filter((k) => k in acl)) {
    problems.push(err(`${base}/${key}`,
      `${notOurs(key)}: role-based ACL grants (server + read/write access) are not supported; ` +
      'rewrite them as ordered "rules", e.g. {"roles": ["dev"], "tools": ["github__*"], "policy": "allow"}'));
    delete acl[key];
  }
}

function compatBackend(name: string, backend: Obj, problems: ConfigProblem[]): void {
  const at = (key: string) => pointer('mcpServers', name, key);
  if ('tool_acl' in backend) {
    problems.push(err(at('tool_acl'), `${notOurs('tool_acl')}: read/write tool classification is not supported; ` +
      'use "tools": {"allow": [...], "deny": [...]} on the backend, or acl rules over "<prefix>__<tool>" names'));
    delete backend.tool_acl;
  }
  for (const key of ['cli', 'cli_help', 'cli_depth', 'cli_only']) {
    if (key in backend) {
      problems.push(err(at(key), `${notOurs(key)}: wrapping a CLI as an MCP server is not supported; run it behind a stdio MCP server and list that server here`));
      delete backend[key];
    }
  }
  if (Array.isArray(backend.tools)) {
    problems.push(err(at('tools'), '"tools" is an object {"allow": [...], "deny": [...]} in Gatehouse; preset CLI tool definitions (avelino/mcp) are not supported'));
    delete backend.tools;
  }
  for (const key of ['idle_timeout', 'min_idle_timeout', 'max_idle_timeout']) {
    if (key in backend) {
      problems.push(warn(at(key), `${notOurs(key)} and has no equivalent (backends stay connected); ignored: remove it`));
      delete backend[key];
    }
  }
}

/** Detects avelino/mcp keys in `doc` (mutated into the Gatehouse form) and returns rename hints. */
export function applyCompat(doc: unknown): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (!isObj(doc)) return problems;

  if (isObj(doc.mcpServers)) {
    for (const [name, backend] of Object.entries(doc.mcpServers)) {
      if (isObj(backend)) compatBackend(name, backend, problems);
    }
  }

  if ('audit' in doc) {
    problems.push(warn('/audit', `${notOurs('audit')}: Gatehouse configures its audit log under "observability.audit"; ignored: remove the block`));
    delete doc.audit;
  }

  const auth = doc.serverAuth;
  if (isObj(auth)) {
    if ('provider' in auth) {
      const value = auth.provider;
      const shown = typeof value === 'string' && PROVIDERS.has(value) ? JSON.stringify(value) : '"<provider>"';
      problems.push(err('/serverAuth/provider',
        `"provider" is not a Gatehouse key; rename to "providers": [${shown}] ` +
        '(avelino/mcp ignores the old "provider" key and runs with no authentication at all)'));
      if (!('providers' in auth) && typeof value === 'string' && PROVIDERS.has(value)) {
        renameKey(auth, 'provider', 'providers');
        auth.providers = [value];
      } else {
        delete auth.provider;
      }
    }

    if ('acl' in auth) {
      const legacy = auth.acl;
      const needsDefault = isObj(legacy) && !('default' in legacy);
      problems.push(err('/serverAuth/acl',
        '"acl" belongs at the top level in Gatehouse: move /serverAuth/acl to /acl' +
        (needsDefault ? ' and add "default": "allow" to keep avelino/mcp\'s behaviour (Gatehouse defaults to "deny")' : '')));
      if (!('acl' in doc)) doc.acl = legacy;
      delete auth.acl;
    }

    const forwarded = auth.forwarded;
    if (isObj(forwarded)) {
      for (const [from, to] of [['header', 'userHeader'], ['groups_header', 'groupsHeader']] as const) {
        if (from in forwarded) {
          problems.push(err(pointer('serverAuth', 'forwarded', from), `"${from}" is not a Gatehouse key; rename to "${to}"`));
          renameKey(forwarded, from, to);
        }
      }
    }

    const tokens = isObj(auth.bearer) ? auth.bearer.tokens : undefined;
    if (isObj(tokens)) {
      Object.keys(tokens).forEach((token, index) => {
        const grant = tokens[token];
        if (typeof grant === 'string') {
          problems.push(err(pointer('serverAuth', 'bearer', 'tokens', tokenLabel(index)),
            `a token maps to an object in Gatehouse: replace the subject string with {"subject": ${JSON.stringify(grant)}, "roles": []}`));
          tokens[token] = { subject: grant };
        }
      });
    }
  }

  if (isObj(doc.acl)) compatAcl(doc.acl, '/acl', problems);
  return problems;
}
