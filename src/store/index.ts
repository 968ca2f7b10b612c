import type { PreRegisteredClientConfig, StateStoreConfig } from '../config/types.js';
import { UserError } from '../errors.js';
import type { Logger } from '../log.js';
import { FileStore } from './file.js';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import type { StateStore } from './types.js';

export type * from './types.js';
export { PERSISTENT_NAMESPACES } from './types.js';
export { FileStore } from './file.js';
export { MemoryStore } from './memory.js';
export { RedisStore } from './redis.js';
export { decideRotation } from './rotation.js';

/** Opens the configured state store (DESIGN.md §8). */
export interface OpenStoreOptions {
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** Called with the store kind and the duration (s) of each write (file flush, redis write command). */
  onWrite?: (store: 'file' | 'redis', seconds: number) => void;
  /** File store only: read without writing anything (see FileStoreOptions.readOnly). */
  readOnly?: boolean;
}

export async function openStore(config: StateStoreConfig, options: OpenStoreOptions): Promise<StateStore> {
  const onWrite = options.onWrite;
  switch (config.type) {
    case 'file': {
      // The config loader resolves the path (stateStore.path, $MCP_AUTH_SERVER_PATH, or next to the config).
      const filePath = config.path ?? options.env?.MCP_AUTH_SERVER_PATH;
      if (!filePath) throw new UserError('stateStore: the file store needs a path (stateStore.path or MCP_AUTH_SERVER_PATH)');
      const store = await FileStore.open(filePath, { logger: options.logger, readOnly: options.readOnly, ...(onWrite ? { onWrite: (seconds: number) => onWrite('file', seconds) } : {}) });
      options.logger.info({ path: store.filePath }, 'state store: file');
      return store;
    }
    case 'memory':
      options.logger.warn('state store: memory. Client registrations and sessions will not survive a restart; users will have to reconnect their clients');
      return new MemoryStore();
    case 'redis': {
      // Several replicas share this one (src/store/README.md, "The Redis store").
      const url = config.url;
      if (!url) throw new UserError('stateStore: the redis store needs a url (stateStore.url, e.g. "${REDIS_URL}")');
      return RedisStore.open(url, { keyPrefix: config.keyPrefix, logger: options.logger, ...(onWrite ? { onWrite: (seconds: number) => onWrite('redis', seconds) } : {}) });
    }
    default:
      throw new UserError(`stateStore: unknown type ${JSON.stringify((config as { type: unknown }).type)}`);
  }
}

/** The read-only seed of pre-registered clients from `MCP_AUTH_SERVER_CONFIG`; never written to the store. */
export interface InlineSeed {
  clients: PreRegisteredClientConfig[];
}

const SEED_SOURCE = 'MCP_AUTH_SERVER_CONFIG';
const AUTH_METHODS = ['none', 'client_secret_basic', 'client_secret_post'] as const;
const CLIENT_KEYS = new Set(['client_id', 'client_name', 'redirect_uris', 'client_secret', 'token_endpoint_auth_method']);

/**
 * Parses `{"version":1,"clients":[{client_id, client_name?, redirect_uris, client_secret?,
 * token_endpoint_auth_method?}]}`. Errors name the JSON path and never echo a value (a secret could
 * be anywhere in a malformed document).
 */
export function parseInlineSeed(text: string): InlineSeed {
  const fail = (at: string, message: string): never => {
    throw new UserError(`${SEED_SOURCE}: ${at} ${message}`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    // The parser's message can quote the text around the error; keep only its position.
    const position = /position \d+(?: \(line \d+ column \d+\))?/.exec(error instanceof Error ? error.message : '');
    return fail('/', `is not valid JSON${position ? ` (at ${position[0]})` : ''}`);
  }
  if (!isObject(doc)) return fail('/', 'must be a JSON object');
  if (doc.version !== 1) fail('/version', 'must be 1');
  for (const key of Object.keys(doc)) {
    if (key !== 'version' && key !== 'clients') fail(`/${key}`, 'is not a known key (expected "version" and "clients")');
  }
  const clients = doc.clients ?? [];
  if (!Array.isArray(clients)) return fail('/clients', 'must be an array');
  const seen = new Set<string>();
  const parsed = clients.map((raw: unknown, index): PreRegisteredClientConfig => {
    const at = `/clients/${index}`;
    if (!isObject(raw)) return fail(at, 'must be an object');
    for (const key of Object.keys(raw)) if (!CLIENT_KEYS.has(key)) fail(`${at}/${key}`, 'is not a known key');
    const clientId = raw.client_id;
    if (typeof clientId !== 'string' || clientId.trim() === '') return fail(`${at}/client_id`, 'must be a non-empty string');
    if (seen.has(clientId)) fail(`${at}/client_id`, `duplicates an earlier client (${JSON.stringify(clientId)})`);
    seen.add(clientId);
    const uris = raw.redirect_uris;
    if (!Array.isArray(uris) || uris.length === 0 || !uris.every((u) => typeof u === 'string' && u !== '')) {
      return fail(`${at}/redirect_uris`, 'must be a non-empty array of strings');
    }
    if (raw.client_name !== undefined && typeof raw.client_name !== 'string') fail(`${at}/client_name`, 'must be a string');
    if (raw.client_secret !== undefined && (typeof raw.client_secret !== 'string' || raw.client_secret === '')) {
      fail(`${at}/client_secret`, 'must be a non-empty string');
    }
    const method = raw.token_endpoint_auth_method;
    if (method !== undefined && !AUTH_METHODS.includes(method as never)) {
      fail(`${at}/token_endpoint_auth_method`, `must be one of ${AUTH_METHODS.map((m) => `"${m}"`).join(', ')}`);
    }
    const hasSecret = raw.client_secret !== undefined;
    if (hasSecret && method === 'none') fail(`${at}/client_secret`, 'is set but token_endpoint_auth_method is "none"');
    if (!hasSecret && method !== undefined && method !== 'none') fail(`${at}/client_secret`, `is required when token_endpoint_auth_method is "${String(method)}"`);
    const client: PreRegisteredClientConfig = { client_id: clientId, redirect_uris: [...(uris as string[])] };
    if (raw.client_name !== undefined) client.client_name = raw.client_name as string;
    if (hasSecret) client.client_secret = raw.client_secret as string;
    if (method !== undefined) client.token_endpoint_auth_method = method as PreRegisteredClientConfig['token_endpoint_auth_method'];
    return client;
  });
  return { clients: parsed };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
