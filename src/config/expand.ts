import type { ConfigProblem } from '../errors.js';
import { pointer, tokenLabel } from '../validation.js';

/**
 * `${VAR}` and `${VAR:-default}` expansion, applied to the parsed document (after JSONC parsing,
 * before schema validation, so enums and patterns see the effective value).
 *
 * - Only string values are expanded; numbers, booleans and null are never touched.
 * - Object keys are expanded only in the maps whose keys are data: `serverAuth.bearer.tokens`
 *   (the key is the token), `mcpServers.*.headers` and `mcpServers.*.env`.
 * - `${VAR:-default}` uses `default` when VAR is unset or empty (as in POSIX shells).
 * - `$${` is a literal `${` (so `$${HOME}` stays `${HOME}`). A `$` not followed by `{` is literal.
 * - An unset variable without a default is an error naming the JSON path and the variable, never a
 *   value: expanded strings may be secrets, so no message here quotes the document.
 */

const REFERENCE = /\$\$\{|\$\{([^}]*)\}/g;
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface ExpandResult {
  /** A fresh copy of the document with references expanded (unresolved ones left as written). */
  value: unknown;
  problems: ConfigProblem[];
}

interface Ctx {
  env: NodeJS.ProcessEnv;
  problems: ConfigProblem[];
}

/** Expands one string; `where` is the JSON path used in messages. */
function expandString(text: string, where: string, ctx: Ctx): string {
  if (!text.includes('${')) return text;
  return text.replace(REFERENCE, (match, body: string | undefined) => {
    if (body === undefined) return '${'; // `$${` escape
    const sep = body.indexOf(':-');
    const name = sep === -1 ? body : body.slice(0, sep);
    if (!VAR_NAME.test(name)) {
      ctx.problems.push({ path: where, message: `"\${${name}}" is not a valid variable reference (expected \${NAME} or \${NAME:-default}; write $\${ for a literal "\${")`, severity: 'error' });
      return match;
    }
    const value = ctx.env[name];
    if (sep !== -1) return value === undefined || value === '' ? body.slice(sep + 2) : value;
    if (value === undefined) {
      ctx.problems.push({ path: where, message: `environment variable ${name} is not set (use \${${name}:-default} for a default)`, severity: 'error' });
      return match;
    }
    return value;
  });
}

function isKeyExpandingMap(segments: readonly string[]): 'tokens' | 'plain' | false {
  const [a, b, c] = segments;
  if (segments.length === 3 && a === 'serverAuth' && b === 'bearer' && c === 'tokens') return 'tokens';
  if (segments.length === 3 && a === 'mcpServers' && (c === 'headers' || c === 'env')) return 'plain';
  return false;
}

function walk(node: unknown, segments: string[], ctx: Ctx): unknown {
  if (typeof node === 'string') return expandString(node, pointer(...segments), ctx);
  if (Array.isArray(node)) return node.map((item, i) => walk(item, [...segments, String(i)], ctx));
  if (node === null || typeof node !== 'object') return node;
  const mapKind = isKeyExpandingMap(segments);
  const out: Record<string, unknown> = {};
  let index = 0;
  for (const [key, child] of Object.entries(node as Record<string, unknown>)) {
    let outKey = key;
    // Token keys are secrets: their path shows a position, never the key.
    const keySegment = mapKind === 'tokens' ? tokenLabel(index) : key;
    if (mapKind) {
      outKey = expandString(key, pointer(...segments, keySegment), ctx);
      if (Object.prototype.hasOwnProperty.call(out, outKey)) {
        ctx.problems.push({ path: pointer(...segments, keySegment), message: 'after variable expansion this key duplicates an earlier key', severity: 'error' });
      }
    }
    out[outKey] = walk(child, [...segments, keySegment], ctx);
    index++;
  }
  return out;
}

/** Expands every `${VAR}` reference in `doc` using `env`. */
export function expandEnv(doc: unknown, env: NodeJS.ProcessEnv): ExpandResult {
  const ctx: Ctx = { env, problems: [] };
  const value = walk(doc, [], ctx);
  return { value, problems: ctx.problems };
}
