import { decideRotation } from './rotation.js';
import type { EphemeralNamespace, Namespace, RotateRequest, RotateResult, SessionRecord, StateStore } from './types.js';

const NAMESPACES: readonly Namespace[] = ['clients', 'consents', 'sessions', 'codes', 'codeUses', 'ratelimit', 'mcpSessions'];

/** One stored entry: the value (a private deep copy) and its expiry in ms since epoch. */
export interface Entry {
  value: object;
  expiresAt?: number;
}

export interface TablesOptions {
  /** Clock for entry expiry (ms since epoch). */
  now?: () => number;
}

/**
 * The synchronous state shared by the memory and file stores: one Map per namespace. Every method
 * runs to completion without awaiting, which is what makes take-once, increment and rotation atomic
 * inside one process. Values are deep-copied in and out so callers never hold stored objects.
 */
export class StoreTables {
  private readonly tables = new Map<Namespace, Map<string, Entry>>();
  private readonly now: () => number;

  constructor(options: TablesOptions = {}) {
    this.now = options.now ?? Date.now;
    for (const ns of NAMESPACES) this.tables.set(ns, new Map());
  }

  get(namespace: Namespace, key: string): object | undefined {
    const entry = this.live(namespace, key);
    return entry ? structuredClone(entry.value) : undefined;
  }

  put(namespace: Namespace, key: string, value: object, ttlSeconds?: number): void {
    checkValue(value);
    const expiresAt = ttlSeconds === undefined ? undefined : this.now() + ttlMs(ttlSeconds);
    this.table(namespace).set(key, expiresAt === undefined ? { value: structuredClone(value) } : { value: structuredClone(value), expiresAt });
  }

  /** The live entry itself, value and expiry, without a copy: for serializing, never for callers to keep. */
  entry(namespace: Namespace, key: string): Readonly<Entry> | undefined {
    return this.live(namespace, key);
  }

  take(namespace: Namespace, key: string): object | undefined {
    const entry = this.live(namespace, key);
    if (!entry) return undefined;
    this.table(namespace).delete(key);
    return entry.value; // no longer stored: no copy needed
  }

  delete(namespace: Namespace, key: string): boolean {
    const existed = this.live(namespace, key) !== undefined;
    this.table(namespace).delete(key);
    return existed;
  }

  list(namespace: Namespace): Array<{ key: string; value: object }> {
    return [...this.liveEntries(namespace)].map(([key, entry]) => ({ key, value: structuredClone(entry.value) }));
  }

  increment(namespace: EphemeralNamespace, key: string, ttlSeconds: number): number {
    const lifetime = ttlMs(ttlSeconds);
    const entry = this.live(namespace, key);
    const count = entry ? Number((entry.value as { count?: unknown }).count ?? 0) + 1 : 1;
    // The window starts at the first increment and is not extended by later ones.
    const expiresAt = entry?.expiresAt ?? this.now() + lifetime;
    this.table(namespace).set(key, { value: { count }, expiresAt });
    return count;
  }

  /** Applies `decideRotation` to the `sessions` entry `request.sid`; `changed` says whether state moved. */
  rotate(request: RotateRequest): { result: RotateResult; changed: boolean } {
    const entry = this.live('sessions', request.sid);
    const { result, next } = decideRotation(entry?.value as SessionRecord | undefined, request);
    if (next === null) this.table('sessions').delete(request.sid);
    // The family is dead after its idle end anyway; the entry expires then, whatever TTL it was put with.
    else if (next) this.table('sessions').set(request.sid, { value: structuredClone(next), expiresAt: next.idleExpiresAt });
    return { result: structuredClone(result), changed: next !== undefined };
  }

  /** Removes every expired entry; returns how many were removed. */
  sweep(): number {
    const now = this.now();
    let removed = 0;
    for (const table of this.tables.values()) {
      for (const [key, entry] of table) {
        if (entry.expiresAt !== undefined && entry.expiresAt <= now) {
          table.delete(key);
          removed++;
        }
      }
    }
    return removed;
  }

  /** Live entries of a namespace, as stored (not copied): for serialisation only. */
  *liveEntries(namespace: Namespace): Iterable<[string, Entry]> {
    const now = this.now();
    for (const [key, entry] of this.table(namespace)) {
      if (entry.expiresAt === undefined || entry.expiresAt > now) yield [key, entry];
    }
  }

  /** Loads an entry read from disk (already validated and owned by the tables); expired ones are dropped. */
  load(namespace: Namespace, key: string, entry: Entry): void {
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.now()) return;
    this.table(namespace).set(key, entry);
  }

  private live(namespace: Namespace, key: string): Entry | undefined {
    const table = this.table(namespace);
    const entry = table.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.now()) {
      table.delete(key); // lazy expiry
      return undefined;
    }
    return entry;
  }

  private table(namespace: Namespace): Map<string, Entry> {
    const table = this.tables.get(namespace);
    if (!table) throw new TypeError(`unknown state store namespace ${JSON.stringify(namespace)}`);
    return table;
  }
}

function ttlMs(ttlSeconds: number): number {
  if (typeof ttlSeconds !== 'number' || !Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
    throw new RangeError(`ttlSeconds must be a positive number of seconds, got ${String(ttlSeconds)}`);
  }
  return ttlSeconds * 1000;
}

function checkValue(value: unknown): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError('state store values must be plain JSON objects');
  }
}

export interface MemoryStoreOptions {
  /** How often expired entries are swept (ms). Default 60 s. */
  sweepIntervalMs?: number;
}

/**
 * Everything in process memory: nothing survives a restart. For tests and for deployments that
 * accept losing registrations and sessions on restart (openStore logs that once, plainly).
 */
export class MemoryStore implements StateStore {
  readonly kind = 'memory' as const;
  private readonly tables = new StoreTables();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.sweeper = setInterval(() => this.tables.sweep(), options.sweepIntervalMs ?? 60_000);
    this.sweeper.unref();
  }

  async get<T extends object>(namespace: Namespace, key: string): Promise<T | undefined> {
    this.open();
    return this.tables.get(namespace, key) as T | undefined;
  }

  async put<T extends object>(namespace: Namespace, key: string, value: T, ttlSeconds?: number): Promise<void> {
    this.open();
    this.tables.put(namespace, key, value, ttlSeconds);
  }

  async takeOnce<T extends object>(namespace: Namespace, key: string): Promise<T | undefined> {
    this.open();
    return this.tables.take(namespace, key) as T | undefined;
  }

  async delete(namespace: Namespace, key: string): Promise<boolean> {
    this.open();
    return this.tables.delete(namespace, key);
  }

  async list<T extends object>(namespace: Namespace): Promise<Array<{ key: string; value: T }>> {
    this.open();
    return this.tables.list(namespace) as Array<{ key: string; value: T }>;
  }

  async increment(namespace: EphemeralNamespace, key: string, ttlSeconds: number): Promise<number> {
    this.open();
    return this.tables.increment(namespace, key, ttlSeconds);
  }

  async rotateRefresh(request: RotateRequest): Promise<RotateResult> {
    this.open();
    return this.tables.rotate(request).result;
  }

  async healthy(): Promise<boolean> {
    return !this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
  }

  private open(): void {
    if (this.closed) throw new Error('the memory state store is closed');
  }
}
