import { randomBytes } from 'node:crypto';
import { access, constants, mkdir, open as openFile, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { StoreTables, type Entry } from './memory.js';
import {
  PERSISTENT_NAMESPACES,
  type EphemeralNamespace,
  type Namespace,
  type PersistentNamespace,
  type RotateRequest,
  type RotateResult,
  type StateStore,
} from './types.js';

/** The on-disk format version this code reads and writes (src/store/README.md). */
export const FILE_FORMAT_VERSION = 1;

export interface FileStoreOptions {
  logger?: Logger;
  /** fsync the directory after the rename so the rename itself is durable. Default: true (false on Windows, where directories cannot be opened). */
  fsyncDirectory?: boolean;
  /** How often expired entries are swept from memory (ms). Default 60 s. */
  sweepIntervalMs?: number;
  /** Called with the duration (s) of every successful flush (temp file, fsync, rename, directory fsync): metrics. */
  onWrite?: (seconds: number) => void;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

const PERSISTENT = new Set<Namespace>(PERSISTENT_NAMESPACES);

/**
 * The default state store: `clients`, `consents` and `sessions` in one JSON file (mode 0600), the
 * ephemeral namespaces in memory. A mutation of a persistent namespace resolves only once the whole
 * new state is durable (temp file, fsync, rename, directory fsync). Flushes are serialised and
 * group-committed: mutations made while a flush is running all wait for the next single flush.
 *
 * A failed flush rejects every waiter of that flush; the in-memory state stays ahead of the file and
 * the next flush (triggered by the next mutation, or by `close`) writes it all again. Until then
 * `healthy()` is false.
 */
export class FileStore implements StateStore {
  readonly kind = 'file' as const;
  private readonly dir: string;
  private readonly logger: Logger;
  private readonly fsyncDirectory: boolean;
  private readonly sweeper: NodeJS.Timeout;
  private readonly onWrite?: (seconds: number) => void;
  /** Waiters of the next flush, which has not started yet. */
  private next: Deferred | undefined;
  /** The flush loop, while it runs. */
  private running: Promise<void> | undefined;
  private flushes = 0;
  private failed = false;
  private closed = false;

  private constructor(readonly filePath: string, private readonly tables: StoreTables, options: FileStoreOptions) {
    this.dir = path.dirname(filePath);
    this.logger = options.logger ?? silentLogger;
    this.fsyncDirectory = options.fsyncDirectory ?? process.platform !== 'win32';
    this.onWrite = options.onWrite;
    this.sweeper = setInterval(() => this.tables.sweep(), options.sweepIntervalMs ?? 60_000);
    this.sweeper.unref();
  }

  /**
   * Opens (or prepares to create) the store file. A missing file means an empty store; the file is
   * created by the first write. An unreadable or invalid file throws a `UserError` naming the path
   * and the problem, and is never modified.
   */
  static async open(filePath: string, options: FileStoreOptions = {}): Promise<FileStore> {
    const absolute = path.resolve(filePath);
    const logger = options.logger ?? silentLogger;
    const dir = path.dirname(absolute);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new UserError(`${dir}: cannot create the directory of the state store file ${absolute} (${describe(error)})`);
    }
    try {
      // Fail at boot rather than at the first registration: every write goes through a temp file here.
      await access(dir, constants.W_OK);
    } catch (error) {
      throw new UserError(`${dir}: the directory of the state store file ${absolute} is not writable (${describe(error)})`);
    }
    const tables = new StoreTables();
    const text = await readState(absolute);
    if (text !== undefined) {
      loadState(absolute, text, tables);
      await warnIfWideMode(absolute, logger);
    }
    await removeStaleTempFiles(absolute, logger);
    const counts = Object.fromEntries(PERSISTENT_NAMESPACES.map((ns) => [ns, [...tables.liveEntries(ns)].length]));
    logger.debug({ path: absolute, existed: text !== undefined, ...counts }, 'state store file opened');
    return new FileStore(absolute, tables, options);
  }

  /** How many flushes have completed successfully (tests assert group commit with it). */
  get flushCount(): number {
    return this.flushes;
  }

  async get<T extends object>(namespace: Namespace, key: string): Promise<T | undefined> {
    this.assertOpen();
    return this.tables.get(namespace, key) as T | undefined;
  }

  async put<T extends object>(namespace: Namespace, key: string, value: T, ttlSeconds?: number): Promise<void> {
    this.assertOpen();
    this.tables.put(namespace, key, value, ttlSeconds);
    if (PERSISTENT.has(namespace)) await this.commit();
  }

  async takeOnce<T extends object>(namespace: Namespace, key: string): Promise<T | undefined> {
    this.assertOpen();
    const value = this.tables.take(namespace, key);
    if (value !== undefined && PERSISTENT.has(namespace)) await this.commit();
    return value as T | undefined;
  }

  async delete(namespace: Namespace, key: string): Promise<boolean> {
    this.assertOpen();
    const deleted = this.tables.delete(namespace, key);
    if (deleted && PERSISTENT.has(namespace)) await this.commit();
    return deleted;
  }

  async list<T extends object>(namespace: Namespace): Promise<Array<{ key: string; value: T }>> {
    this.assertOpen();
    return this.tables.list(namespace) as Array<{ key: string; value: T }>;
  }

  async increment(namespace: EphemeralNamespace, key: string, ttlSeconds: number): Promise<number> {
    this.assertOpen();
    if (PERSISTENT.has(namespace)) throw new TypeError(`increment is only for ephemeral namespaces, not ${namespace}`);
    return this.tables.increment(namespace, key, ttlSeconds);
  }

  /**
   * Atomic because the read-decide-write runs synchronously in this process. Every outcome that
   * changed the family (including `grace`, which moves `lastUsedAt`) waits for durability, so a
   * successor is never handed out before the generation it derives from is on disk.
   */
  async rotateRefresh(request: RotateRequest): Promise<RotateResult> {
    this.assertOpen();
    const { result, changed } = this.tables.rotate(request);
    if (changed) await this.commit();
    return result;
  }

  async healthy(): Promise<boolean> {
    return !this.closed && !this.failed;
  }

  /** Waits for the running flush, retries a failed one once, and stops the sweep timer. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    await this.running;
    if (this.failed) await this.commit();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`the state store ${this.filePath} is closed`);
  }

  /** Joins the next flush (starting the flush loop if idle); resolves once that flush is durable. */
  private commit(): Promise<void> {
    if (!this.next) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.next = { promise, resolve, reject };
    }
    const { promise } = this.next;
    this.running ??= this.drain();
    return promise;
  }

  private async drain(): Promise<void> {
    // Let every mutation made in the same turn of the event loop join the first flush.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.next) {
      const batch = this.next;
      this.next = undefined;
      // The snapshot holds every mutation applied so far, including those of this batch's waiters.
      const text = this.serialize();
      try {
        const started = process.hrtime.bigint();
        await this.write(text);
        this.onWrite?.(Number(process.hrtime.bigint() - started) / 1e9);
        this.flushes++;
        this.failed = false;
        batch.resolve();
      } catch (error) {
        this.failed = true;
        this.logger.error({ path: this.filePath, err: describe(error) }, 'state store flush failed; the change is kept in memory and the next write retries');
        batch.reject(new Error(`${this.filePath}: could not save the state store (${describe(error)})`, { cause: error }));
      }
    }
    this.running = undefined;
  }

  private serialize(): string {
    const doc: Record<string, unknown> = { version: FILE_FORMAT_VERSION };
    for (const ns of PERSISTENT_NAMESPACES) {
      // fromEntries defines own properties, so a key such as "__proto__" round-trips as data.
      doc[ns] = Object.fromEntries([...this.tables.liveEntries(ns)].map(([key, entry]) => [
        key,
        entry.expiresAt === undefined ? { value: entry.value } : { value: entry.value, expiresAt: entry.expiresAt },
      ]));
    }
    return JSON.stringify(doc, null, 2) + '\n';
  }

  private async write(text: string): Promise<void> {
    const temp = `${this.filePath}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    let handle: FileHandle | undefined;
    try {
      handle = await openFile(temp, 'wx', 0o600);
      await handle.chmod(0o600); // the umask can only narrow the mode; make it exact before the rename
      await handle.writeFile(text, 'utf8');
      await handle.sync();
      await handle.close();
      handle = undefined;
      await rename(temp, this.filePath);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw error;
    }
    if (this.fsyncDirectory) {
      // Without this the rename may be lost on power failure even though the data blocks are synced.
      const dirHandle = await openFile(this.dir, 'r');
      try {
        await dirHandle.sync();
      } finally {
        await dirHandle.close();
      }
    }
  }
}

function corrupt(filePath: string, problem: string): UserError {
  return new UserError(
    `${filePath}: the state store file ${problem}. The file was left untouched: fix it, or move it away to start ` +
    'with an empty store (registrations and sessions in it would be lost).',
  );
}

async function readState(filePath: string): Promise<string | undefined> {
  try {
    return await readFile(filePath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw corrupt(filePath, `cannot be read (${describe(error)})`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validates the whole document before loading anything; the first problem found is reported with its JSON path. */
function loadState(filePath: string, text: string, tables: StoreTables): void {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw corrupt(filePath, `is not valid JSON (${describe(error)})`);
  }
  if (!isObject(doc)) throw corrupt(filePath, 'is not a JSON object');
  if (doc.version !== FILE_FORMAT_VERSION) {
    throw corrupt(filePath, `has version ${JSON.stringify(doc.version) ?? 'undefined'}; this Gatehouse reads version ${FILE_FORMAT_VERSION}`);
  }
  for (const key of Object.keys(doc)) {
    if (key !== 'version' && !PERSISTENT.has(key as Namespace)) throw corrupt(filePath, `has an unknown key at /${pointer(key)}`);
  }
  const loaded: Array<[PersistentNamespace, string, Entry]> = [];
  for (const ns of PERSISTENT_NAMESPACES) {
    const section = doc[ns];
    if (section === undefined) continue;
    if (!isObject(section)) throw corrupt(filePath, `has a wrong shape at /${ns}: must be an object`);
    for (const [key, raw] of Object.entries(section)) {
      const at = `/${ns}/${pointer(key)}`;
      if (!isObject(raw) || !isObject(raw.value) || Object.keys(raw).some((k) => k !== 'value' && k !== 'expiresAt')) {
        throw corrupt(filePath, `has a wrong shape at ${at}: must be {"value": {...}, "expiresAt"?: <ms since epoch>}`);
      }
      if (raw.expiresAt !== undefined && (typeof raw.expiresAt !== 'number' || !Number.isFinite(raw.expiresAt))) {
        throw corrupt(filePath, `has a wrong shape at ${at}/expiresAt: must be a number (ms since epoch)`);
      }
      loaded.push([ns, key, raw.expiresAt === undefined ? { value: raw.value } : { value: raw.value, expiresAt: raw.expiresAt as number }]);
    }
  }
  for (const [ns, key, entry] of loaded) tables.load(ns, key, entry);
}

function pointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

async function warnIfWideMode(filePath: string, logger: Logger): Promise<void> {
  if (process.platform === 'win32') return;
  try {
    const mode = (await stat(filePath)).mode & 0o777;
    if (mode & 0o077) {
      logger.warn({ path: filePath, mode: mode.toString(8) }, 'the state store file is accessible to other users; it is rewritten with mode 0600 on the next write');
    }
  } catch {
    // Only a warning: the read already succeeded.
  }
}

/** Removes `<file>.<pid>.<hex>.tmp` files left by a process that died mid-flush (never a live one's). */
async function removeStaleTempFiles(filePath: string, logger: Logger): Promise<void> {
  const base = path.basename(filePath);
  let names: string[];
  try {
    names = await readdir(path.dirname(filePath));
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(base + '.')) continue;
    const match = /^\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name.slice(base.length));
    if (!match || processAlive(Number(match[1]))) continue;
    await unlink(path.join(path.dirname(filePath), name)).then(
      () => logger.info({ path: name }, 'removed a temporary state store file left by a crashed process'),
      () => undefined,
    );
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
