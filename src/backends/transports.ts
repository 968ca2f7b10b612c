import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { createInterface } from 'node:readline';
import type { BackendConfig, HttpBackendConfig, StdioBackendConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { fetchFor } from './dispatcher.js';
import { safeEnvironment } from './environment.js';
import { StdioBackendTransport } from './stdio.js';

export interface TransportCandidate {
  describe: string;
  make(): Transport;
}

/**
 * The transports to try, in order. `auto` tries Streamable HTTP first and falls back to the legacy
 * HTTP+SSE transport, as the MCP spec's backwards-compatibility section describes.
 */
export function transportCandidates(config: BackendConfig, logger: Logger): TransportCandidate[] {
  if (config.kind === 'stdio') return [{ describe: 'stdio', make: () => stdioTransport(config, logger) }];
  const streamable = { describe: 'streamable-http', make: () => streamableTransport(config) };
  const sse = { describe: 'sse', make: () => sseTransport(config) };
  if (config.transport === 'streamable-http') return [streamable];
  if (config.transport === 'sse') return [sse];
  return [streamable, sse];
}

function stdioTransport(config: StdioBackendConfig & { name: string }, logger: Logger): Transport {
  return new StdioBackendTransport(
    { command: config.command, args: config.args, env: { ...safeEnvironment(), ...config.env }, cwd: config.cwd },
    // Backend stderr is diagnostics for operators only: it goes to our log, never to clients.
    (stderr) => {
      const lines = createInterface({ input: stderr });
      lines.on('line', (line) => logger.debug({ backend: config.name, stderr: line.slice(0, 2000) }, 'backend stderr'));
    },
  );
}

function requestInit(config: HttpBackendConfig): RequestInit {
  return { headers: { ...config.headers } };
}

function streamableTransport(config: HttpBackendConfig & { name: string }): Transport {
  return new StreamableHTTPClientTransport(new URL(config.url), {
    requestInit: requestInit(config),
    fetch: fetchFor(config.url),
  });
}

function sseTransport(config: HttpBackendConfig & { name: string }): Transport {
  return new SSEClientTransport(new URL(config.url), {
    requestInit: requestInit(config),
    eventSourceInit: { fetch: fetchFor(config.url) } as never,
    fetch: fetchFor(config.url),
  });
}
