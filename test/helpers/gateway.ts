import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { Gateway } from '../../src/app.js';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger, silentLogger } from '../../src/log.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const FIXTURE_SERVER = fileURLToPath(new URL('../fixtures/servers/fixture-server.mjs', import.meta.url));
export const EVERYTHING_SERVER = fileURLToPath(new URL('../../node_modules/@modelcontextprotocol/server-everything/dist/index.js', import.meta.url));

interface Tap {
  teardown(fn: () => unknown): void;
}

/** A stdio backend entry running the fixture server. */
export function fixtureStdio(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { command: process.execPath, args: [FIXTURE_SERVER, 'stdio'], ...extra };
}

/** Starts the gateway in this process on 127.0.0.1:0 with `doc` as its servers.json; closed at teardown. */
export async function startGateway(t: Tap, doc: unknown, env: NodeJS.ProcessEnv = {}, options: { waitForBackends?: boolean; port?: number; baseDir?: string } = {}): Promise<{ gateway: Gateway; url: string; mcpUrl: string }> {
  const fullEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...env };
  const { config } = parseConfigText(JSON.stringify(doc), 'test servers.json', options.baseDir ?? ROOT, fullEnv);
  const logger = process.env.GATEHOUSE_TEST_LOG ? createLogger({ level: process.env.GATEHOUSE_TEST_LOG as never }) : silentLogger;
  const gateway = await Gateway.start({ config, host: '127.0.0.1', port: options.port ?? 0, logger, env: fullEnv });
  t.teardown(() => gateway.close());
  // Deterministic tests: wait for every backend's first connection attempt unless told otherwise.
  if (options.waitForBackends !== false) await gateway.ready();
  return { gateway, url: gateway.url, mcpUrl: `${gateway.url}/mcp` };
}

/** Connects the SDK client to the gateway with a static bearer token; closed at teardown. */
/** `client` answers sampling requests with `reply(prompt)`, and `asked` records `name` each time. */
export function answerSampling(client: Client, name: string, asked: string[], reply: (prompt: string) => string): void {
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
    asked.push(name);
    const prompt = (request.params.messages[0]!.content as { text: string }).text;
    return { role: 'assistant', content: { type: 'text', text: reply(prompt) }, model: 'test-model' };
  });
}

export async function connectClient(t: Tap, mcpUrl: string, token?: string, capabilities: Record<string, unknown> = {}): Promise<Client> {
  const client = new Client({ name: 'gatehouse-test', version: '1.0.0' }, { capabilities });
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
    requestInit: token ? { headers: { authorization: `Bearer ${token}` } } : undefined,
  });
  await client.connect(transport);
  t.teardown(() => client.close());
  return client;
}

/** Spawns a backend process that prints "listening <port>"; killed at teardown. */
export async function spawnListening(t: Tap, command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} ${args.join(' ')} did not start listening`)), 20_000);
    const onLine = (line: string) => {
      const match = /listening (?:on port )?(\d+)/i.exec(line) ?? /localhost:(\d+)/.exec(line) ?? /port (\d+)/i.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    child.once('exit', (code) => reject(new Error(`${command} exited with ${code} before listening`)));
  });
  return { port, child };
}

/** Starts the fixture server over Streamable HTTP ("http") or legacy SSE ("sse"), on `port` (default: any free one). */
export async function startFixtureHttp(t: Tap, mode: 'http' | 'sse', port = 0): Promise<{ url: string; child: ChildProcess; port: number }> {
  const { port: listening, child } = await spawnListening(t, process.execPath, [FIXTURE_SERVER, mode, String(port)]);
  return { url: mode === 'http' ? `http://127.0.0.1:${listening}/mcp` : `http://127.0.0.1:${listening}/sse`, child, port: listening };
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
