import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { ConfigProblem } from './errors.js';

/**
 * The one Ajv instance of the process, and the compiled validators for the schemas under `schemas/`.
 *
 * Options: `allErrors` (report every problem at once), `useDefaults` (the schema is where defaults
 * live: validation fills them in, so callers must pass a document they own), `strict` (refuses
 * unknown keywords and defaults that would be silently ignored, e.g. inside `oneOf`) and `verbose`
 * (errors carry their parent schema, used to suggest known keys; `data` is never printed).
 */

// ajv-formats is CommonJS; under NodeNext its default export arrives as the module object.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

export const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true });
addFormats(ajv);

/** `<root>/schemas/servers.schema.json`; the same relative URL works from `src/` (tests) and `dist/`. */
export const SERVERS_SCHEMA_URL = new URL('../schemas/servers.schema.json', import.meta.url);

let serversValidator: ValidateFunction | undefined;
let serversSchema: Record<string, unknown> | undefined;

/** The parsed servers.json schema (read once). */
export function getServersSchema(): Record<string, unknown> {
  serversSchema ??= JSON.parse(readFileSync(SERVERS_SCHEMA_URL, 'utf8')) as Record<string, unknown>;
  return serversSchema;
}

function getServersValidator(): ValidateFunction {
  serversValidator ??= ajv.compile(getServersSchema());
  return serversValidator;
}

/** Builds a JSON Pointer (RFC 6901) from path segments. */
export function pointer(...segments: Array<string | number>): string {
  return segments.map((s) => '/' + String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

function unescapeSegment(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

const TOKENS_PATH = '/serverAuth/bearer/tokens/';

/** The label shown instead of a bearer token (the key of `bearer.tokens` is itself the secret). */
export function tokenLabel(index: number): string {
  return `<token #${index + 1}>`;
}

/**
 * Replaces a bearer token in a JSON path by its position (`/serverAuth/bearer/tokens/<token #2>/roles`).
 * Token values are map keys, so a plain JSON path would print the secret.
 */
export function redactPath(path: string, doc: unknown): string {
  if (!path.startsWith(TOKENS_PATH)) return path;
  const rest = path.slice(TOKENS_PATH.length);
  const slash = rest.indexOf('/');
  const key = unescapeSegment(slash === -1 ? rest : rest.slice(0, slash));
  const tokens = (doc as { serverAuth?: { bearer?: { tokens?: unknown } } } | undefined)?.serverAuth?.bearer?.tokens;
  const keys = tokens && typeof tokens === 'object' ? Object.keys(tokens) : [];
  const index = keys.indexOf(key);
  const label = index === -1 ? '<token>' : tokenLabel(index);
  return TOKENS_PATH + label + (slash === -1 ? '' : rest.slice(slash));
}

const PATTERN_HINTS: Record<string, string> = {
  '^[A-Za-z0-9_-]+$': 'use letters, digits, "_" and "-" only',
  '^(?!.*__)[A-Za-z0-9_-]+$': 'use letters, digits, "_" and "-" only, and no "__" (it separates the prefix from the tool name)',
  '^[^=\\u0000]+$': 'an environment variable name cannot contain "=" or NUL',
  "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$": 'not a valid HTTP header name',
};

const TYPE_NAMES: Record<string, string> = {
  string: 'a string', number: 'a number', integer: 'an integer', boolean: 'true or false',
  object: 'an object', array: 'an array', null: 'null',
};

function getAt(doc: unknown, path: string): unknown {
  if (path === '') return doc;
  let cur: unknown = doc;
  for (const seg of path.slice(1).split('/')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[unescapeSegment(seg)];
  }
  return cur;
}

/** Suggests a known key for a misspelt one: same letters ignoring case, `_` and `-`. */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, '');
  return known.find((k) => norm(k) === norm(key));
}

function describe(error: ErrorObject, doc: unknown): { path: string; message: string } | undefined {
  const path = error.instancePath;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const known = Object.keys((error.parentSchema?.properties as Record<string, unknown> | undefined) ?? {});
      const hint = suggestKey(key, known);
      const knownList = known.length > 0 && known.length <= 12 ? `; known keys: ${known.map((k) => `"${k}"`).join(', ')}` : '';
      return { path, message: `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : knownList}` };
    }
    case 'required':
      return { path, message: `missing required key "${String(params.missingProperty)}"` };
    case 'enum':
      return { path, message: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'type':
      return { path, message: `must be ${String(params.type).split(',').map((t) => TYPE_NAMES[t] ?? t).join(' or ')}` };
    case 'pattern': {
      const pattern = String(params.pattern);
      return { path, message: PATTERN_HINTS[pattern] ?? `must match the pattern ${pattern}` };
    }
    case 'propertyNames':
      // The nested pattern error carries the explanation; this one only says "invalid name".
      return undefined;
    case 'oneOf':
      if (error.schemaPath === '#/definitions/backend/oneOf') {
        const backend = getAt(doc, path) as Record<string, unknown> | undefined;
        const both = backend !== undefined && 'command' in backend && 'url' in backend;
        return {
          path,
          message: both
            ? 'a backend needs either "command" (stdio) or "url" (remote), not both'
            : 'a backend needs either "command" (stdio) or "url" (remote)',
        };
      }
      return { path, message: 'does not match exactly one of the allowed forms' };
    case 'anyOf':
      if (error.schemaPath.endsWith('/rules/items/anyOf')) {
        return { path, message: 'a rule needs at least one of "tools", "resources" or "prompts"' };
      }
      return { path, message: 'does not match any of the allowed forms' };
    case 'minItems':
      return { path, message: Number(params.limit) === 1 ? 'must not be empty' : `must have at least ${String(params.limit)} items` };
    case 'minLength':
      return { path, message: Number(params.limit) === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters` };
    case 'uniqueItems':
      return { path, message: `must not contain duplicates (items ${String(params.j)} and ${String(params.i)} are equal)` };
    default:
      return { path, message: error.message ?? `fails the "${error.keyword}" check` };
  }
}

/**
 * Validates a servers.json document (already parsed, `${VAR}` already expanded) against
 * `schemas/servers.schema.json`, filling in defaults in place. Messages never include values from
 * the document (they may be secrets), and bearer tokens in paths are replaced by their position.
 */
export function validateServersDocument(doc: unknown): { valid: boolean; problems: ConfigProblem[] } {
  const validate = getServersValidator();
  const valid = validate(doc) as boolean;
  if (valid) return { valid, problems: [] };
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const error of validate.errors ?? []) {
    // Errors from inside a oneOf/anyOf branch are noise: the oneOf/anyOf error itself is reported.
    if (/\/(oneOf|anyOf)\/\d+\//.test(error.schemaPath)) continue;
    let described = describe(error, doc);
    if (!described) continue;
    if (error.keyword === 'pattern' && error.propertyName !== undefined) {
      described = { path: described.path, message: `key "${error.propertyName}": ${described.message}` };
    }
    const path = redactPath(described.path, doc);
    const id = `${path}\u0000${described.message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    problems.push({ path, message: described.message, severity: 'error' });
  }
  return { valid, problems };
}

export const CLIENT_REGISTRATION_SCHEMA_URL = new URL('../schemas/client-registration.schema.json', import.meta.url);
let registrationValidator: ValidateFunction | undefined;

/**
 * Validates an RFC 7591 registration request (defaults applied in place). Returns human-readable
 * problems, each naming the field, or an empty list.
 */
export function validateClientRegistration(body: unknown): string[] {
  registrationValidator ??= ajv.compile(JSON.parse(readFileSync(CLIENT_REGISTRATION_SCHEMA_URL, 'utf8')) as object);
  if (registrationValidator(body)) return [];
  return (registrationValidator.errors ?? []).map((e) => `${e.instancePath || 'body'} ${e.message ?? 'is invalid'}`);
}
