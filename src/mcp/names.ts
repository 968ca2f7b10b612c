/**
 * The only place that prefixes and un-prefixes names and URIs with a backend's prefix.
 * Tools and prompts are exposed as `<prefix>__<name>`. Prefixes never contain `__` (the schema
 * refuses it).
 *
 * Resources and resource templates are exposed as `<scheme-prefix>+<uri>` (`everything+demo://x`):
 * the prefix joins the URI's scheme, so the exposed URI is still a valid RFC 3986 URI, as MCP
 * requires (`_` is not allowed in a scheme, and strict clients such as pydantic-based ones reject
 * `everything__demo://x`). The scheme prefix is the backend prefix lowercased, `_` written `-`, and
 * `r-` in front when it does not start with a letter. The `<prefix>__<uri>` form is still accepted
 * on input and matched by ACL globs, as an alias.
 */
export const SEPARATOR = '__';
export const URI_SEPARATOR = '+';

export function exposeName(prefix: string, name: string): string {
  return `${prefix}${SEPARATOR}${name}`;
}

/**
 * Splits an exposed URI into its prefix and the backend's own URI. Prefixes are tried longest
 * first, so `a_` and `a` never shadow each other.
 */
export function splitExposed(exposed: string, prefixesLongestFirst: readonly string[]): { prefix: string; local: string } | undefined {
  for (const prefix of prefixesLongestFirst) {
    if (exposed.length > prefix.length + SEPARATOR.length && exposed.startsWith(prefix) && exposed.startsWith(SEPARATOR, prefix.length)) {
      return { prefix, local: exposed.slice(prefix.length + SEPARATOR.length) };
    }
  }
  return undefined;
}

/** Sorts prefixes so that the longest is tried first by `splitExposed`. */
export function longestFirst(prefixes: Iterable<string>): string[] {
  return [...prefixes].sort((a, b) => b.length - a.length || a.localeCompare(b));
}

/** The scheme-safe form of a prefix, used in exposed resource URIs. */
export function uriPrefix(prefix: string): string {
  const lowered = prefix.toLowerCase().replace(/_/g, '-');
  return /^[a-z]/.test(lowered) ? lowered : `r-${lowered}`;
}

/** Exposed form of a backend's resource URI or URI template. */
export function exposeUri(prefix: string, uri: string): string {
  return `${uriPrefix(prefix)}${URI_SEPARATOR}${uri}`;
}

/** Splits an exposed resource URI (`<uri-prefix>+<uri>`) by the longest matching URI prefix. */
export function splitExposedUri(exposed: string, uriPrefixesLongestFirst: readonly string[]): { uriPrefix: string; local: string } | undefined {
  for (const candidate of uriPrefixesLongestFirst) {
    if (exposed.length > candidate.length + 1 && exposed.startsWith(candidate) && exposed[candidate.length] === URI_SEPARATOR) {
      return { uriPrefix: candidate, local: exposed.slice(candidate.length + 1) };
    }
  }
  return undefined;
}
