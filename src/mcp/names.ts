/**
 * The only place that prefixes and un-prefixes names and URIs with a backend's prefix.
 * Tools and prompts are exposed as `<prefix>__<name>`, resources as `<prefix>__<uri>` and resource
 * templates as `<prefix>__<uriTemplate>`. Prefixes never contain `__` (the schema refuses it).
 */
export const SEPARATOR = '__';

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
