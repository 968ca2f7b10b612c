import { pino, destination as pinoDestination, levels, symbols, type Logger, type LevelWithSilent } from 'pino';
import { boundedMemo } from './memo.js';

export type { Logger };

/**
 * Keys whose values never reach a log line, whatever the caller passes (a safety net: callers log
 * neither credentials nor arguments; the request line's `path` is cut at the `?`). Checked on the
 * object and two levels into it, which is where a caller could put a header or a body.
 */
const SENSITIVE_KEYS = new Set([
  'authorization', 'cookie', 'token', 'access_token', 'refresh_token', 'code', 'client_secret', 'secret',
  'password', 'code_verifier', 'code_challenge', 'bearerToken', 'jwtSecret', 'arguments', 'env',
]);
const REDACTED = '[redacted]';
const SCRUB_DEPTH = 3;

/** The object without sensitive values: the same object when it has none (the usual case, no copy). */
export function scrubLogObject(object: Record<string, unknown>, depth = SCRUB_DEPTH): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key in object) {
    const value = object[key];
    let replacement: unknown = value;
    if (SENSITIVE_KEYS.has(key)) replacement = REDACTED;
    else if (depth > 1 && value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Error)) {
      replacement = scrubLogObject(value as Record<string, unknown>, depth - 1);
    }
    if (replacement !== value) {
      copy ??= { ...object };
      copy[key] = replacement;
    }
  }
  return copy ?? object;
}

/** ISO timestamps, formatted once per millisecond however many lines share it. */
let lastMillis = 0;
let lastTime = '';
function isoTime(): string {
  const now = Date.now();
  if (now !== lastMillis) {
    lastMillis = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

type PinoInternals = Record<symbol, unknown> & { [symbols.lsCacheSym]: Record<number, string>; [symbols.timeSym]: () => string; [symbols.chindingsSym]: string; [symbols.endSym]: string; [symbols.streamSym]: { write(line: string): unknown } };

/**
 * The JSON members of fields objects a caller froze to log them again and again (an identity's
 * `auth` event, say): scrubbed and serialized once. Such an object must hold only values that
 * never change (strings, numbers, frozen arrays).
 */
const frozenFieldsJson = new WeakMap<object, string>();

/** Messages are mostly a handful of constants ("request", "tool call"): each is quoted once. */
const messageJson = boundedMemo((message) => JSON.stringify(message), 512);

/**
 * Scrubbed fields as JSON object members, each after a comma (`,"a":1,"b":"x"`, or '' for none);
 * undefined when pino must write them (an `err` object, a cycle, a BigInt).
 */
function jsonMembers(fields: Record<string, unknown>): string | undefined {
  const object = scrubLogObject(fields);
  if (object.err !== undefined && typeof object.err === 'object') return undefined;
  let json: string;
  try {
    json = JSON.stringify(object);
  } catch {
    return undefined;
  }
  return json.length > 2 ? `,${json.slice(1, -1)}` : '';
}

/** `jsonMembers`, remembered for a frozen fields object. */
function membersOf(fields: Readonly<Record<string, unknown>>): string | undefined {
  const frozen = Object.isFrozen(fields);
  let members = frozen ? frozenFieldsJson.get(fields) : undefined;
  if (members === undefined) {
    members = jsonMembers(fields as Record<string, unknown>);
    if (frozen && members !== undefined) frozenFieldsJson.set(fields, members);
  }
  return members;
}

/**
 * A line's fields as a part that repeats from line to line (the `tool_call` event of one identity,
 * tool and ACL decision, say) and the few that change (outcome, duration), named differently. A
 * frozen `repeated` is serialized once, like any frozen fields object; the line is the same as for
 * the two merged, which is also what `toJSON` gives anything else that serializes it.
 */
export class RepeatedFields {
  constructor(readonly repeated: Readonly<Record<string, unknown>>, readonly changing: Record<string, unknown> | SelfSerializingFields) {}

  toJSON(): Record<string, unknown> {
    return { ...this.repeated, ...this.changing };
  }
}

/** Strings JSON.stringify writes between quotes as they are: no quote, backslash, control character or surrogate. */
const VERBATIM_JSON_STRING = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/** `value` as a JSON string literal, the same as JSON.stringify's; most are quoted as they are. */
export function jsonString(value: string): string {
  return VERBATIM_JSON_STRING.test(value) ? `"${value}"` : JSON.stringify(value);
}

/**
 * Fields that write their own JSON members, for a line written on every request (the request
 * line): one template instead of a scrub, a JSON.stringify and a slice, about 4 % of the
 * instructions of a tool call through the gateway. Such fields hold no sensitive key by construction,
 * and `toJSON` gives anything else that serializes them the same fields in the same order.
 */
export abstract class SelfSerializingFields {
  /** The members exactly as JSON.stringify writes them, each after a comma (`,"a":1,"b":"x"`). */
  abstract jsonMembers(): string;
  abstract toJSON(): Record<string, unknown>;
}

/**
 * pino's `logMethod` hook: a `(fields, message)` call is written here with one native
 * JSON.stringify of the scrubbed fields, in the line pino would write (level, time, the child's
 * bindings, the fields, msg). pino's generic writer reads every field through megamorphic property
 * loads and string concatenation, which made a request's four lines a fifth of the gateway's CPU.
 * Everything else goes to pino as is: printf-style arguments, an `err` object (pino's error
 * serializer), and values JSON.stringify refuses (a cycle, a BigInt). Frozen fields objects are
 * serialized once (`frozenFieldsJson`), and so is the repeated part of `RepeatedFields`;
 * `SelfSerializingFields` write their own.
 */
function writePlainLine(this: Logger, args: unknown[], method: (...args: unknown[]) => void, level: number): void {
  const [fields, message] = args;
  if (args.length === 2 && typeof message === 'string' && fields !== null && typeof fields === 'object') {
    let members: string | undefined;
    if (fields instanceof SelfSerializingFields) {
      members = fields.jsonMembers();
    } else if (fields instanceof RepeatedFields) {
      const repeated = membersOf(fields.repeated);
      const changing = repeated === undefined ? undefined : fields.changing instanceof SelfSerializingFields ? fields.changing.jsonMembers() : jsonMembers(fields.changing);
      if (changing !== undefined) members = repeated + changing;
      else args = [fields.toJSON(), message];
    } else if (Object.getPrototypeOf(fields) === Object.prototype) {
      members = membersOf(fields as Record<string, unknown>);
    }
    if (members !== undefined) {
      const self = this as unknown as PinoInternals;
      self[symbols.streamSym].write(`${self[symbols.lsCacheSym][level]}${self[symbols.timeSym]()}${self[symbols.chindingsSym]}${members},"msg":${messageJson(message)}${self[symbols.endSym]}`);
      return;
    }
  }
  method.apply(this, args);
}

const LOG_BATCH_BYTES = 8192;
const LOG_FLUSH_MS = 100;

export interface LoggerOptions {
  level?: LevelWithSilent;
  format?: 'json' | 'pretty';
  destination?: NodeJS.WritableStream;
}

/**
 * Structured logger (pino, JSON lines on stderr by default). `pretty` only shortens the line
 * layout without an extra dependency: the same fields, human-readable. The default stderr
 * destination is buffered (`batchedLines`): lines leave in batches of about 8 KB, at most
 * `LOG_FLUSH_MS` apart, and what is left is written when the process exits (a request costs four
 * lines, and one system call per line was a quarter of the gateway's CPU under load). A batch is
 * written synchronously, as Node writes its own stderr to files and pipes: handing each batch to
 * the thread pool and back cost more than the write itself on a two-core machine.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const base = {
    level: options.level ?? 'info',
    base: undefined,
    timestamp: isoTime,
    formatters: {
      level: (label: string) => ({ level: label }),
      log: (object: Record<string, unknown>) => scrubLogObject(object),
    },
    hooks: { logMethod: writePlainLine },
  };
  if (options.format === 'pretty') {
    const destination = options.destination ?? process.stderr;
    return pino(base, {
      write(line: string) {
        try {
          const { time, level, msg, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
          destination.write(`${String(time).slice(11, 19)} ${typeof level === "number" ? levels.labels[level] : String(level)} ${msg ?? ''}${extra}\n`);
        } catch {
          destination.write(line);
        }
      },
    });
  }
  return pino(base, (options.destination ?? batchedLines(pinoDestination({ fd: 2, sync: true, minLength: 0 }), LOG_FLUSH_MS)) as never);
}

type SonicBoom = ReturnType<typeof pinoDestination>;

/** What `batchedLines` returns: a pino destination that also flushes on demand. */
export interface LineBatch {
  write(line: string): boolean;
  /** Hands the lines gathered so far to the underlying stream. */
  flush(): void;
  /** Flushes and stops watching for the process exit (the caller closes the stream). */
  close(): void;
}

/** Batches whose lines must be written when the process exits (one 'exit' listener for all). */
const openBatches = new Set<{ flush(): void; stream: SonicBoom }>();
let exitHooked = false;

function flushAtExit(): void {
  for (const batch of openBatches) {
    batch.flush();
    try {
      batch.stream.flushSync();
    } catch {
      // not open (yet) or already closed: nothing more can be written
    }
  }
}

/**
 * Gathers log lines and hands them to `stream` in batches of about `LOG_BATCH_BYTES`, or `delayMs`
 * after the first line of a batch (0: at the end of the event-loop turn). SonicBoom's own buffer
 * measures the UTF-8 length of its whole pending buffer on every line, which cost a request's four
 * lines more than formatting them; here a batch is joined and measured once. What is still
 * gathered when the process exits is written synchronously, after what the stream holds.
 */
export function batchedLines(stream: SonicBoom, delayMs: number): LineBatch {
  let lines: string[] = [];
  let length = 0;
  let timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  const flush = () => {
    if (timer !== undefined) {
      if (delayMs === 0) clearImmediate(timer as NodeJS.Immediate);
      else clearTimeout(timer as NodeJS.Timeout);
      timer = undefined;
    }
    if (lines.length === 0) return;
    const text = lines.length === 1 ? lines[0]! : lines.join('');
    lines = [];
    length = 0;
    stream.write(text);
  };
  const entry = { flush, stream };
  openBatches.add(entry);
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', flushAtExit);
  }
  return {
    write(line: string) {
      lines.push(line);
      length += line.length;
      if (length >= LOG_BATCH_BYTES) flush();
      else if (timer === undefined) timer = delayMs === 0 ? setImmediate(flush) : setTimeout(flush, delayMs).unref();
      return true;
    },
    flush,
    close() {
      flush();
      openBatches.delete(entry);
    },
  };
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = pino({ level: 'silent' });
