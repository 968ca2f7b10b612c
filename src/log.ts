import { pino, levels, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * Paths that must never reach a log line, whatever the caller passes (a safety net: callers log
 * neither credentials nor query strings; the request line's `path` is cut at the `?`).
 */
const REDACT = [
  'authorization', 'headers.authorization', 'req.headers.authorization', '*.authorization',
  'token', '*.token', 'access_token', 'refresh_token', 'code', 'client_secret', 'secret', '*.secret',
  '*.access_token', '*.refresh_token', '*.client_secret', 'code_verifier', 'code_challenge',
  'bearerToken', '*.bearerToken', 'jwtSecret', '*.jwtSecret',
  'arguments', '*.arguments', 'env', '*.env',
];

export interface LoggerOptions {
  level?: LevelWithSilent;
  format?: 'json' | 'pretty';
  destination?: NodeJS.WritableStream;
}

/**
 * Structured logger (pino, JSON lines on stderr by default). `pretty` only shortens the line
 * layout without an extra dependency: the same fields, human-readable.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? process.stderr;
  const base = {
    level: options.level ?? 'info',
    redact: { paths: REDACT, censor: '[redacted]' },
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (options.format === 'pretty') {
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
  return pino(base, destination as never);
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = pino({ level: 'silent' });
