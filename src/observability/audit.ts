import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { destination as pinoDestination } from 'pino';
import type { AuditConfig } from '../config/types.js';
import { perIdentity, type Identity } from '../auth/types.js';
import { UserError } from '../errors.js';
import { batchedLines, createLogger, type Logger } from '../log.js';

/**
 * The audit log (README "Metrics and audit log"): one JSON line per audit event, every line with
 * `"audit":true` and an `event` field. Emitters use the shared field names
 * `event`, `decision`, `subject`, `clientId`, `provider`, `backend`, `tool`, `rule`, `outcome`,
 * `durationMs`, `reason`, and never a token, secret, code or tool argument (the same redaction as
 * the logs applies as a safety net).
 *
 * - `stderr` (default): through the main logger's stream and format, as before, but at level info
 *   whatever `--log-level` says (only `silent` silences it);
 * - `stdout`: a dedicated JSON logger on stdout;
 * - `file`: a dedicated JSON logger appending to `path` (created with mode 0600), reopened by
 *   `reopen()` (SIGHUP) for log rotation.
 */
export interface AuditLog {
  readonly logger: Logger;
  /** Reopens the file (after a rotation); a no-op for the streams. */
  reopen(): void;
  /** Flushes what is buffered and closes the file. */
  close(): Promise<void>;
}

type SonicBoom = ReturnType<typeof pinoDestination>;

/**
 * The fields of an `auth` allow event. For a shared identity (one per credential) the same frozen
 * object every time, so the logger serializes it once.
 */
export const authAllowedEvent = perIdentity((identity: Identity, shared): Record<string, unknown> => {
  const event = { event: 'auth', decision: 'allow', provider: identity.via, subject: identity.subject, clientId: identity.clientId };
  return shared ? Object.freeze(event) : event;
});

export async function openAuditLog(config: AuditConfig, logger: Logger): Promise<AuditLog> {
  const opened = await openDestination(config, logger);
  const deferred = deferLines(opened.logger);
  return {
    logger: deferred.logger,
    reopen: () => opened.reopen(),
    async close() {
      deferred.flush();
      await opened.close();
    },
  };
}

/**
 * Audit lines are formatted after the response they describe has been written (in the same order,
 * with the same content, within the same turn of the event loop), so a request does not wait for
 * the three or four lines it causes.
 */
function deferLines(logger: Logger): { logger: Logger; flush(): void } {
  if (!logger.isLevelEnabled('info')) return { logger, flush() {} };
  type Level = 'info' | 'warn' | 'error';
  let queue: Array<[Level, unknown[]]> = [];
  const flush = () => {
    const lines = queue;
    queue = [];
    for (const [level, args] of lines) (logger[level] as (...a: unknown[]) => void)(...args);
  };
  const enqueue = (level: Level) => (...args: unknown[]) => {
    if (queue.length === 0) setImmediate(flush);
    queue.push([level, args]);
  };
  const deferred = Object.create(logger) as Logger;
  deferred.info = enqueue('info') as Logger['info'];
  deferred.warn = enqueue('warn') as Logger['warn'];
  deferred.error = enqueue('error') as Logger['error'];
  return { logger: deferred, flush };
}

async function openDestination(config: AuditConfig, logger: Logger): Promise<AuditLog> {
  if (config.destination === 'stdout') {
    return { logger: createLogger({ level: 'info', destination: process.stdout }).child({ audit: true }), reopen() {}, async close() {} };
  }
  if (config.destination !== 'file' || !config.path) {
    const level = logger.level === 'silent' ? 'silent' : 'info';
    return { logger: logger.child({ audit: true }, { level }), reopen() {}, async close() {} };
  }
  const file = config.path;
  try {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new UserError(`observability.audit.path: cannot create the directory of ${file} (${(error as Error).message})`);
  }
  const destination: SonicBoom = pinoDestination({ dest: file, append: true, mode: 0o600, sync: false, minLength: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      destination.once('ready', () => resolve());
      destination.once('error', reject);
    });
  } catch (error) {
    throw new UserError(`observability.audit.path: cannot open ${file} for appending (${(error as Error).message})`);
  }
  destination.on('error', (error: Error) => logger.error({ path: file, err: error.message }, 'audit log write failed'));
  warnIfWideMode(file, logger);
  let closed = false;
  // The lines of one event-loop turn leave in one write (a tool call makes three).
  const batch = batchedLines(destination, 0);
  // Lines emitted after close (a request finishing late) are dropped rather than thrown.
  const guarded = { write: (line: string) => (closed ? true : batch.write(line)) };
  return {
    logger: createLogger({ level: 'info', destination: guarded as unknown as NodeJS.WritableStream }).child({ audit: true }),
    reopen() {
      if (closed) return;
      batch.flush();
      destination.reopen();
    },
    async close() {
      if (closed) return;
      closed = true;
      batch.close();
      await new Promise<void>((resolve) => {
        destination.once('close', () => resolve());
        destination.once('error', () => resolve());
        destination.end();
      });
    },
  };
}

function warnIfWideMode(file: string, logger: Logger): void {
  if (process.platform === 'win32') return;
  try {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) logger.warn({ path: file, mode: mode.toString(8) }, 'the audit log is readable by other users (it was created before with a wider mode); chmod 600 it');
  } catch {
    // only a warning
  }
}
