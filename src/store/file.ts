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

/** The journal lives next to the snapshot: `<path>.journal`. */
export const JOURNAL_SUFFIX = '.journal';

/** Default floor of the compaction threshold (`journalCompactBytes`). */
export const DEFAULT_JOURNAL_COMPACT_BYTES = 4 * 1024 * 1024;

export interface FileStoreOptions {
  logger?: Logger;
  /** fsync the directory after a rename or the journal's creation so the name itself is durable. Default: true (false on Windows, where directories cannot be opened). */
  fsyncDirectory?: boolean;
  /** How often expired entries are swept from memory (ms). Default 60 s. */
  sweepIntervalMs?: number;
  /** Called with the duration (s) of every successful flush (until its waiters resolve): metrics. */
  onWrite?: (seconds: number) => void;
  /**
   * The journal is compacted into a new snapshot once it reaches max(journalCompactBytes, 2 × the
   * size of the last snapshot). Default 4 MiB (`DEFAULT_JOURNAL_COMPACT_BYTES`).
   */
  journalCompactBytes?: number;
  /**
   * Open without writing anything (no directory creation, no compaction, no temp-file cleanup):
   * the journal is replayed in memory only, and persistent changes are refused. For reading the
   * store of a gateway that may be running (`mcp auth ... list/show --config`).
   */
  readOnly?: boolean;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Persistent keys changed since the last flush started (their state is read from the tables when written). */
type Dirty = Map<PersistentNamespace, Set<string>>;

/** One journal line: an entry's whole current state, or its deletion. */
type JournalRecord =
  | { ns: PersistentNamespace; key: string; value: object; expiresAt?: number }
  | { ns: PersistentNamespace; key: string; deleted: true };

const PERSISTENT = new Set<Namespace>(PERSISTENT_NAMESPACES);

/**
 * The default state store: `clients`, `consents` and `sessions` on disk (mode 0600), the ephemeral
 * namespaces in memory. On disk the state is a snapshot (`<path>`, the whole state as one JSON
 * document, replaced atomically: temp file, fsync, rename, directory fsync) plus an append-only
 * journal (`<path>.journal`, one JSON line per changed entry). A mutation of a persistent namespace
 * resolves only once it is durable: its journal line was written and the journal fdatasynced.
 * Flushes are serialised and group-committed: every key changed since the last flush gets one line
 * (its current state), the batch is written with one write and made durable with one fdatasync, and
 * mutations made while a flush is running all wait for the next single flush.
 *
 * Compaction writes a new snapshot and only then truncates the journal: when the journal reaches
 * max(`journalCompactBytes`, 2 × the snapshot), at the first write when there is no snapshot yet,
 * after a failed flush, at `close` and at `open` after replaying a non-empty journal.
 *
 * A failed flush rejects every waiter of that flush; the in-memory state stays ahead of the disk, the
 * keys stay dirty and the next flush (triggered by the next mutation, or by `close`) compacts, which
 * writes everything again. Until a flush succeeds `healthy()` is false.
 */
export class FileStore implements StateStore {
  readonly kind = 'file' as const;
  readonly journalPath: string;
  private readonly dir: string;
  private readonly logger: Logger;
  private readonly fsyncDirectory: boolean;
  private readonly compactBytes: number;
  private readonly readOnly: boolean;
  private readonly sweeper: NodeJS.Timeout;
  private readonly onWrite?: (seconds: number) => void;
  /** Waiters of the next flush, which has not started yet. */
  private next: Deferred | undefined;
  /** The flush loop, while it runs. */
  private running: Promise<void> | undefined;
  private dirty: Dirty = new Map();
  /** The journal, opened for appending at its first use and kept open. */
  private journal: FileHandle | undefined;
  /** Bytes in the journal file (all of them acknowledged lines, unless `journalBroken`). */
  private journalBytes: number;
  /** An append or truncation failed: the journal's content is unknown, so it is reset before anything is appended again. */
  private journalBroken = false;
  /** Size of the snapshot file; undefined while there is none. */
  private snapshotBytes: number | undefined;
  /** A compaction failed (the journal is intact): the next flush tries again. */
  private compactDue = false;
  /** `close` asks its final flush to compact. */
  private compactRequested = false;
  private flushes = 0;
  private failed = false;
  private closed = false;

  private constructor(
    readonly filePath: string,
    private readonly tables: StoreTables,
    options: FileStoreOptions,
    onDisk: { snapshotBytes: number | undefined; journalBytes: number },
  ) {
    this.journalPath = filePath + JOURNAL_SUFFIX;
    this.dir = path.dirname(filePath);
    this.logger = options.logger ?? silentLogger;
    this.fsyncDirectory = options.fsyncDirectory ?? process.platform !== 'win32';
    this.compactBytes = options.journalCompactBytes ?? DEFAULT_JOURNAL_COMPACT_BYTES;
    this.onWrite = options.onWrite;
    this.readOnly = options.readOnly ?? false;
    this.snapshotBytes = onDisk.snapshotBytes;
    this.journalBytes = onDisk.journalBytes;
    this.sweeper = setInterval(() => this.tables.sweep(), options.sweepIntervalMs ?? 60_000);
    this.sweeper.unref();
  }

  /**
   * Opens (or prepares to create) the store: loads the snapshot, replays the journal over it and, if
   * the journal was not empty, compacts (so every boot starts from a fresh snapshot and an empty
   * journal). A missing snapshot means an empty store; the files are created by the first write. An
   * unreadable or invalid snapshot, or a corrupt journal line other than a torn last one, throws a
   * `UserError` naming the path and the problem, and neither file is modified.
   */
  static async open(filePath: string, options: FileStoreOptions = {}): Promise<FileStore> {
    const absolute = path.resolve(filePath);
    const journalPath = absolute + JOURNAL_SUFFIX;
    const logger = options.logger ?? silentLogger;
    const dir = path.dirname(absolute);
    if (options.readOnly) return FileStore.openReadOnly(absolute, options);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new UserError(`${dir}: cannot create the directory of the state store file ${absolute} (${describe(error)})`);
    }
    try {
      // Fail at boot rather than at the first registration: every snapshot goes through a temp file here.
      await access(dir, constants.W_OK);
    } catch (error) {
      throw new UserError(`${dir}: the directory of the state store file ${absolute} is not writable (${describe(error)})`);
    }
    const tables = new StoreTables();
    const { text } = await readState(absolute);
    let wideMode = false;
    if (text !== undefined) {
      loadState(absolute, text, tables);
      wideMode = await warnIfWideMode(absolute, logger);
    }
    const journal = await readJournal(journalPath);
    const replayed = journal && journal.length > 0 ? replayJournal(journalPath, journal, tables, logger) : undefined;
    await removeStaleTempFiles(absolute, logger);
    const store = new FileStore(absolute, tables, options, {
      snapshotBytes: text === undefined ? undefined : Buffer.byteLength(text),
      journalBytes: journal?.length ?? 0,
    });
    // A snapshot readable by others is rewritten (mode 0600) by the first flush.
    if (wideMode) store.compactDue = true;
    if (replayed) {
      try {
        await store.compact();
      } catch (error) {
        await store.dispose();
        throw new UserError(
          `${journalPath}: the state store journal was replayed but could not be compacted into ${absolute} (${describe(error)}). ` +
          'Nothing was lost: the journal is replayed again at the next start. Fix the cause (disk full? permissions?) and start again.',
        );
      }
    }
    const counts = Object.fromEntries(PERSISTENT_NAMESPACES.map((ns) => [ns, [...tables.liveEntries(ns)].length]));
    logger.debug({ path: absolute, existed: text !== undefined, journalLines: replayed?.lines ?? 0, ...counts }, 'state store file opened');
    return store;
  }

  /**
   * A running writer may compact between our two reads: it renames a new snapshot into place and
   * then empties the journal, so the old snapshot with the emptied journal would miss its latest
   * changes. A journal read after such a rename is detected by the snapshot's inode having changed
   * since it was read, and both are read again. (A new snapshot with the old journal is consistent:
   * the journal holds nothing the snapshot lacks.)
   */
  private static async openReadOnly(absolute: string, options: FileStoreOptions): Promise<FileStore> {
    const logger = options.logger ?? silentLogger;
    const journalPath = absolute + JOURNAL_SUFFIX;
    for (let attempt = 1; ; attempt++) {
      const snapshot = await readState(absolute);
      const journal = await readJournal(journalPath);
      if (attempt < READ_ONLY_ATTEMPTS && (await inodeOf(absolute)) !== snapshot.inode) continue;
      const tables = new StoreTables();
      if (snapshot.text !== undefined) loadState(absolute, snapshot.text, tables);
      if (journal && journal.length > 0) replayJournal(journalPath, journal, tables, logger);
      return new FileStore(absolute, tables, options, { snapshotBytes: snapshot.text === undefined ? undefined : Buffer.byteLength(snapshot.text), journalBytes: journal?.length ?? 0 });
    }
  }

  /**
   * Resolves once no flush is running: every acknowledged change is then in the snapshot or the
   * journal, and no compaction is halfway (a reader opening the files now sees a complete pair).
   */
  async idle(): Promise<void> {
    while (this.running) await this.running;
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
    if (!PERSISTENT.has(namespace)) {
      this.tables.put(namespace, key, value, ttlSeconds);
      return;
    }
    this.assertWritable();
    this.tables.put(namespace, key, value, ttlSeconds);
    this.markDirty(namespace as PersistentNamespace, key);
    await this.commit();
  }

  async takeOnce<T extends object>(namespace: Namespace, key: string): Promise<T | undefined> {
    this.assertOpen();
    if (PERSISTENT.has(namespace)) this.assertWritable();
    const value = this.tables.take(namespace, key);
    if (value !== undefined && PERSISTENT.has(namespace)) {
      this.markDirty(namespace as PersistentNamespace, key);
      await this.commit();
    }
    return value as T | undefined;
  }

  async delete(namespace: Namespace, key: string): Promise<boolean> {
    this.assertOpen();
    if (PERSISTENT.has(namespace)) this.assertWritable();
    const deleted = this.tables.delete(namespace, key);
    if (deleted && PERSISTENT.has(namespace)) {
      this.markDirty(namespace as PersistentNamespace, key);
      await this.commit();
    }
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
    this.assertWritable();
    const { result, changed } = this.tables.rotate(request);
    if (changed) {
      this.markDirty('sessions', request.sid);
      await this.commit();
    }
    return result;
  }

  async healthy(): Promise<boolean> {
    return !this.closed && !this.failed;
  }

  /**
   * Waits for the running flush, then compacts (retrying a failed flush), so a clean shutdown leaves
   * a complete snapshot and an empty journal; stops the sweep timer and closes the journal.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    if (this.readOnly) return this.dispose();
    await this.running;
    let failure: unknown;
    // Changes that are not durable yet (a failed flush) make close reject if they still cannot be
    // written; a compaction that only tidies up a complete journal is merely logged when it fails.
    const pending = this.failed || this.journalBroken || this.dirty.size > 0;
    if (pending || this.compactDue || this.journalBytes > 0) {
      this.compactRequested = true;
      const flushed = this.commit();
      await this.running; // the whole flush, compaction included, even when its waiters resolved early
      await flushed.catch((error: unknown) => {
        if (pending) failure = error;
        else this.logger.warn({ path: this.filePath, err: describe(error) }, 'state store compaction at close failed; nothing is lost: the journal is replayed at the next start');
      });
    }
    await this.dispose();
    if (failure) throw failure;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`the state store ${this.filePath} is closed`);
  }

  private assertWritable(): void {
    if (this.readOnly) throw new Error(`the state store ${this.filePath} is open read-only`);
  }

  private async dispose(): Promise<void> {
    clearInterval(this.sweeper);
    const journal = this.journal;
    this.journal = undefined;
    await journal?.close().catch(() => undefined);
  }

  private markDirty(namespace: PersistentNamespace, key: string): void {
    let keys = this.dirty.get(namespace);
    if (!keys) this.dirty.set(namespace, (keys = new Set()));
    keys.add(key);
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
      await this.flush(batch);
    }
    this.running = undefined;
  }

  /**
   * One flush: the journal lines of every key changed since the last flush, one write, one
   * fdatasync; or, when a compaction is due, a new snapshot and an empty journal. Never throws: the
   * outcome goes to the batch's waiters.
   */
  private async flush(batch: Deferred): Promise<void> {
    const started = process.hrtime.bigint();
    const dirty = this.dirty;
    this.dirty = new Map();
    // Built now, synchronously: the lines hold every mutation applied so far, including those of this batch's waiters.
    const lines = Buffer.from(this.journalLines(dirty), 'utf8');
    const compact = this.compactRequested || this.journalBroken || this.compactDue || this.snapshotBytes === undefined ||
      this.journalBytes + lines.length >= Math.max(this.compactBytes, 2 * this.snapshotBytes);
    let resolved = false;
    const succeed = () => {
      resolved = true;
      this.onWrite?.(Number(process.hrtime.bigint() - started) / 1e9);
      this.flushes++;
      batch.resolve();
    };
    try {
      if (!compact) {
        await this.append(lines);
        succeed();
      } else {
        // The snapshot is taken at the same instant as the lines: replaying the journal (these lines
        // included) over it yields it again, so a crash between the rename and the truncation is harmless.
        const snapshot = this.serialize();
        if (lines.length > 0 && this.journalBytes > 0 && !this.journalBroken) {
          // Appended first so this batch's waiters need not wait for the snapshot. (With an empty or
          // broken journal the snapshot alone is the durable copy.)
          await this.append(lines);
          succeed();
        }
        await this.compact(snapshot);
        if (!resolved) succeed();
      }
      this.failed = false;
    } catch (error) {
      this.failed = true;
      if (resolved) {
        // The batch is durable in the journal; only the compaction failed, and the next flush retries it.
        this.logger.error({ path: this.filePath, err: describe(error) }, 'state store compaction failed; the journal keeps every change and the next write retries');
        return;
      }
      // Still dirty: the next flush writes their state as it is then.
      for (const [ns, keys] of dirty) for (const key of keys) this.markDirty(ns, key);
      this.logger.error({ path: this.filePath, err: describe(error) }, 'state store flush failed; the change is kept in memory and the next write retries');
      batch.reject(new Error(`${this.filePath}: could not save the state store (${describe(error)})`, { cause: error }));
    }
  }

  /** One JSON line per dirty key with its current state (a deletion if it is gone). */
  private journalLines(dirty: Dirty): string {
    let text = '';
    for (const [ns, keys] of dirty) {
      for (const key of keys) {
        const entry = this.tables.entry(ns, key);
        const record: JournalRecord = entry === undefined ? { ns, key, deleted: true }
          : entry.expiresAt === undefined ? { ns, key, value: entry.value } : { ns, key, value: entry.value, expiresAt: entry.expiresAt };
        text += JSON.stringify(record) + '\n';
      }
    }
    return text;
  }

  /** Appends whole lines with one write and makes them durable with one fdatasync. */
  private async append(buffer: Buffer): Promise<void> {
    if (buffer.length === 0) return;
    try {
      const journal = await this.openJournal();
      let offset = 0;
      while (offset < buffer.length) {
        // One write; it only loops on a short write (a nearly full disk).
        const { bytesWritten } = await journal.write(buffer, offset, buffer.length - offset);
        if (bytesWritten <= 0) throw new Error(`short write to ${this.journalPath}`);
        offset += bytesWritten;
      }
      await journal.datasync();
      this.journalBytes += buffer.length;
    } catch (error) {
      // Part of the batch may be in the file: nothing more is appended until a compaction resets it.
      this.journalBroken = true;
      throw error;
    }
  }

  /** Opens the journal for appending (creating it, mode 0600) and fsyncs the directory so its name is durable. */
  private async openJournal(): Promise<FileHandle> {
    if (this.journal) return this.journal;
    const handle = await openFile(this.journalPath, 'a', 0o600);
    try {
      await handle.chmod(0o600); // the umask can only narrow the mode; an existing file may be wider
      await this.syncDirectory(); // once per handle: the journal may have just been created
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    this.journal = handle;
    return handle;
  }

  /**
   * Writes `snapshot` (default: the state now) atomically over the snapshot file, then empties the
   * journal. A failure leaves a consistent pair on disk (old or new snapshot, plus the journal).
   */
  private async compact(snapshot = this.serialize()): Promise<void> {
    try {
      await this.writeSnapshot(snapshot);
    } catch (error) {
      this.compactDue = true;
      throw error;
    }
    this.snapshotBytes = Buffer.byteLength(snapshot);
    if (this.journalBytes > 0 || this.journalBroken) {
      try {
        if (this.journalBroken) {
          // Reopen: the old handle may be the broken part.
          await this.journal?.close().catch(() => undefined);
          this.journal = undefined;
        }
        const journal = await this.openJournal();
        await journal.truncate(0);
        await journal.datasync();
      } catch (error) {
        this.journalBroken = true;
        throw error;
      }
    }
    this.journalBytes = 0;
    this.journalBroken = false;
    this.compactDue = false;
    this.compactRequested = false;
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

  private async writeSnapshot(text: string): Promise<void> {
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
    // Without this the rename may be lost on power failure even though the data blocks are synced.
    await this.syncDirectory();
  }

  private async syncDirectory(): Promise<void> {
    if (!this.fsyncDirectory) return;
    const dirHandle = await openFile(this.dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }
}

function corrupt(filePath: string, problem: string): UserError {
  return new UserError(
    `${filePath}: the state store file ${problem}. The file was left untouched: fix it, or move it and its journal ` +
    `(${filePath}${JOURNAL_SUFFIX}) away to start with an empty store (registrations and sessions in them would be lost).`,
  );
}

/** Reads of a read-only open raced by compactions before it settles for the last pair it read. */
const READ_ONLY_ATTEMPTS = 20;

/** The snapshot's text and the inode it was read from (undefined for both when there is none). */
async function readState(filePath: string): Promise<{ text: string | undefined; inode: number | undefined }> {
  let handle: FileHandle;
  try {
    handle = await openFile(filePath, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { text: undefined, inode: undefined };
    throw corrupt(filePath, `cannot be read (${describe(error)})`);
  }
  try {
    const { ino } = await handle.stat();
    return { text: await handle.readFile('utf8'), inode: ino };
  } catch (error) {
    throw corrupt(filePath, `cannot be read (${describe(error)})`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

async function inodeOf(filePath: string): Promise<number | undefined> {
  try {
    return (await stat(filePath)).ino;
  } catch {
    return undefined;
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

function corruptJournal(journalPath: string, problem: string): UserError {
  return new UserError(
    `${journalPath}: the state store journal ${problem}. Both the journal and the snapshot were left untouched: fix the line, ` +
    'or truncate the journal from that line on (the changes in and after it would be lost).',
  );
}

/** The journal's bytes; undefined when there is none. */
async function readJournal(journalPath: string): Promise<Buffer | undefined> {
  try {
    return await readFile(journalPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw corruptJournal(journalPath, `cannot be read (${describe(error)})`);
  }
}

/**
 * Replays the journal over the loaded snapshot, in order; every line is an entry's whole state or its
 * deletion, so replaying lines the snapshot already contains changes nothing. A last line without
 * its newline or that does not parse is a write torn by a crash, never acknowledged: it is ignored
 * with a warning. Any other bad line refuses the open; everything is validated before anything is applied.
 */
function replayJournal(journalPath: string, bytes: Buffer, tables: StoreTables, logger: Logger): { lines: number } {
  const lines = bytes.toString('utf8').split('\n');
  // After the last newline: '' for a complete journal, else a torn write.
  const tail = lines.pop()!;
  const records: JournalRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const lineNumber = i + 1;
    let parsed: unknown;
    try {
      parsed = JSON.parse(lines[i]!);
    } catch (error) {
      if (i === lines.length - 1 && tail === '') {
        logger.warn({ path: journalPath, line: lineNumber }, 'ignored the last line of the state store journal: it does not parse (a write torn by a crash, never acknowledged)');
        continue;
      }
      throw corruptJournal(journalPath, `has a line that is not valid JSON at line ${lineNumber} (${describe(error)})`);
    }
    const problem = journalRecordProblem(parsed);
    if (problem) throw corruptJournal(journalPath, `has a wrong shape at line ${lineNumber}: ${problem}`);
    records.push(parsed as JournalRecord);
  }
  if (tail !== '') {
    logger.warn({ path: journalPath, line: lines.length + 1 }, 'ignored the last line of the state store journal: it has no newline (a write torn by a crash, never acknowledged)');
  }
  for (const record of records) {
    // A deletion, or a value already expired (the snapshot never holds expired entries either).
    tables.delete(record.ns, record.key);
    if ('value' in record) tables.load(record.ns, record.key, record.expiresAt === undefined ? { value: record.value } : { value: record.value, expiresAt: record.expiresAt });
  }
  if (records.length > 0 || tail !== '') logger.info({ path: journalPath, lines: records.length }, 'state store journal replayed');
  return { lines: records.length };
}

/** The same rules as a snapshot entry: a persistent namespace, a string key, an object value and a finite expiresAt if any. */
function journalRecordProblem(record: unknown): string | undefined {
  const expected = 'must be {"ns", "key", "value": {...}, "expiresAt"?: <ms since epoch>} or {"ns", "key", "deleted": true}';
  if (!isObject(record)) return expected;
  if (typeof record.ns !== 'string' || !PERSISTENT.has(record.ns as Namespace)) {
    return `"ns" must be one of ${PERSISTENT_NAMESPACES.join(', ')} (got ${JSON.stringify(record.ns) ?? 'undefined'})`;
  }
  if (typeof record.key !== 'string') return `"key" must be a string`;
  if ('deleted' in record) {
    return record.deleted === true && Object.keys(record).length === 3 ? undefined : expected;
  }
  if (!isObject(record.value) || Object.keys(record).some((k) => k !== 'ns' && k !== 'key' && k !== 'value' && k !== 'expiresAt')) return expected;
  if (record.expiresAt !== undefined && (typeof record.expiresAt !== 'number' || !Number.isFinite(record.expiresAt))) {
    return '"expiresAt" must be a number (ms since epoch)';
  }
  return undefined;
}

function pointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Warns and returns true when the snapshot is accessible to other users. */
async function warnIfWideMode(filePath: string, logger: Logger): Promise<boolean> {
  if (process.platform === 'win32') return false;
  try {
    const mode = (await stat(filePath)).mode & 0o777;
    if (mode & 0o077) {
      logger.warn({ path: filePath, mode: mode.toString(8) }, 'the state store file is accessible to other users; it is rewritten with mode 0600 on the next write');
      return true;
    }
  } catch {
    // Only a warning: the read already succeeded.
  }
  return false;
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
