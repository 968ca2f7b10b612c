import { Gateway } from '../app.js';
import { loadConfig } from '../config/load.js';
import { UserError } from '../errors.js';
import { isLoopbackAddress } from '../http/peer.js';
import { createLogger, type Logger } from '../log.js';

export interface ServeOptions {
  config?: string;
  http?: string;
  insecure?: boolean;
  logLevel?: string;
  logFormat?: 'json' | 'pretty';
}

/** `HOST:PORT`, `[::1]:PORT`, or just `PORT`. */
export function parseListenAddress(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UserError(`--http "${value}" is not HOST:PORT (for example 127.0.0.1:8080 or [::1]:8080)`);
  }
  return { host: match[1] || match[2] || '127.0.0.1', port };
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** Runs the gateway until SIGTERM/SIGINT; SIGHUP reloads the config (validated before it is used). */
export async function serveCommand(options: ServeOptions): Promise<void> {
  const level = options.logLevel ?? process.env.LOG_LEVEL ?? 'info';
  if (!LEVELS.includes(level)) throw new UserError(`--log-level must be one of ${LEVELS.join(', ')}`);
  const logger = createLogger({ level: level as never, format: options.logFormat });
  const { config, warnings } = await loadConfig({ path: options.config, env: process.env });
  for (const warning of warnings) logger.warn({ path: warning.path }, warning.message);

  const { host, port } = parseListenAddress(options.http ?? process.env.MCP_HTTP ?? '127.0.0.1:8080');
  const loopback = isLoopbackAddress(host) || host === 'localhost';
  if (!loopback && !options.insecure) {
    throw new UserError(`refusing to listen on ${host}: a non-loopback address serves tokens over plain HTTP. Terminate TLS in a reverse proxy in front of Gatehouse and pass --insecure to confirm, or bind 127.0.0.1.`);
  }
  if (!loopback && config.serverAuth.providers.includes('none')) {
    throw new UserError(`refusing to listen on ${host} without authentication: configure serverAuth.providers (for example "bearer"), or bind 127.0.0.1.`);
  }

  let gateway: Gateway;
  try {
    gateway = await Gateway.start({ config, host, port, logger });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UserError(`cannot listen on ${host}:${port}: the address is already in use (pick another with --http HOST:PORT)`);
    if (code === 'EACCES' || code === 'EADDRNOTAVAIL') throw new UserError(`cannot listen on ${host}:${port}: ${(error as Error).message}`);
    throw error;
  }
  logger.info({ url: `${gateway.url}/mcp`, backends: config.backends.map((b) => b.name), config: config.sourcePath ?? 'MCP_SERVERS_CONFIG' }, 'Gatehouse listening');
  installSignals(gateway, options, logger);
}

function installSignals(gateway: Gateway, options: ServeOptions, logger: Logger): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'draining and shutting down');
    gateway.close().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: String(error) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    loadConfig({ path: options.config, env: process.env })
      .then(async ({ config, warnings }) => {
        for (const warning of warnings) logger.warn({ path: warning.path }, warning.message);
        await gateway.reload(config);
      })
      .catch((error: Error) => logger.error({ problems: error.message }, 'reload refused: the new configuration is invalid; keeping the running one'));
  });
}
