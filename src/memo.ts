/**
 * A pure function of a string, remembered: for values that repeat and hold nothing secret (JOSE
 * headers, peer addresses, log messages). The map is emptied when it reaches `limit`, so it stays
 * bounded whatever callers send.
 */
export function boundedMemo<T>(compute: (key: string) => T, limit: number): (key: string) => T {
  const entries = new Map<string, T>();
  return (key) => {
    let value = entries.get(key);
    if (value === undefined) {
      value = compute(key);
      if (entries.size >= limit) entries.clear();
      entries.set(key, value);
    }
    return value;
  };
}
