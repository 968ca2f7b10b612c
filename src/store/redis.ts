/**
 * The Redis state store (DESIGN.md §8): every namespace in one Redis, shared by several replicas.
 * See src/store/README.md ("The Redis store") for the key layout, the rotation script, durability and
 * the failure behaviour; this comment only summarises.
 *
 * - Keys `<keyPrefix><namespace>:<key>`, values JSON, TTLs as PX / PXAT (Redis expires them itself).
 * - `takeOnce` is one GETDEL; `increment` and `rotateRefresh` are one Lua script each (EVALSHA, with
 *   ioredis falling back to EVAL after a NOSCRIPT, e.g. after a Redis restart emptied the cache).
 * - `list` walks SCAN MATCH over the namespace prefix (glob characters escaped) then MGETs in chunks.
 * - While Redis is unreachable every method rejects within ~1 s with `StoreUnavailableError`: no
 *   offline queue, a 1 s command timeout, and no re-sending of commands that were in flight when the
 *   connection dropped (a rotation re-applied behind the caller's back would revoke its family).
 *   The client reconnects by itself with a bounded backoff (100 ms doubling up to 2 s, forever).
 */
import { Redis, type RedisOptions } from 'ioredis';
import { UserError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  StoreUnavailableError,
  type EphemeralNamespace,
  type Namespace,
  type RotateRequest,
  type RotateResult,
  type SessionRecord,
  type StateStore,
} from './types.js';

/** Every namespace of types.ts (none contains ':', which keeps the key layout unambiguous). */
const NAMESPACES: ReadonlySet<string> = new Set(['clients', 'consents', 'sessions', 'codes', 'codeUses', 'ratelimit', 'mcpSessions']);

/** Redis replies that mean "not now" rather than "wrong command": they map to StoreUnavailableError. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|MISCONF)\b/;

export interface RedisStoreOptions {
  /** Prepended to every key (`stateStore.keyPrefix`, default "gatehouse:"). */
  keyPrefix: string;
  logger: Logger;
  /** Per-command timeout (ms). Default 1000. */
  commandTimeoutMs?: number;
  /** How long `open` waits for the first connection before returning a store that keeps retrying (ms). Default 3000. */
  initialConnectWaitMs?: number;
  /** Upper bound of the reconnect backoff (ms). Default 2000. */
  maxReconnectDelayMs?: number;
  /** Called with the duration (s) of every write command (metrics). */
  onWrite?: (seconds: number) => void;
}

/**
 * Increments a `{ "count": n }` counter; the first increment sets the window (PX), later ones keep
 * it (KEEPTTL). A value without a TTL gets one, like the in-memory tables.
 * KEYS[1] counter key; ARGV[1] window in ms. Returns the new count.
 */
const INCREMENT_LUA = `
local raw = redis.call('GET', KEYS[1])
local n = 1
if raw then
  local ok, value = pcall(cjson.decode, raw)
  if ok and type(value) == 'table' and tonumber(value['count']) then n = tonumber(value['count']) + 1 end
end
local doc = '{"count":' .. string.format('%.0f', n) .. '}'
if raw and redis.call('PTTL', KEYS[1]) > 0 then
  redis.call('SET', KEYS[1], doc, 'KEEPTTL')
else
  redis.call('SET', KEYS[1], doc, 'PX', ARGV[1])
end
return n
`;

/**
 * The refresh rotation: `decideRotation` (src/store/rotation.ts) in Lua, read + decide + write in one
 * atomic script. KEYS[1] the session key; ARGV: presentedGeneration, now, graceMs, idleTtlMs.
 * Returns { status } or { status, recordJson }.
 *
 * The record is read with cjson but written back by patching the changed top-level numbers into the
 * stored JSON text: cjson would turn an empty array (`"groups":[]`) into `{}`, reorder members and
 * round numbers to 14 digits. Every other byte of the record stays as the caller wrote it.
 */
const ROTATE_LUA = `
local function fmt(v)
  if v == math.floor(v) and v > -1e15 and v < 1e15 then return string.format('%.0f', v) end
  return string.format('%.17g', v)
end

-- Replaces the values of top-level members named in 'updates' (numbers only), appends missing ones.
local function patch(raw, updates, order)
  local out, from, depth, i, n = {}, 1, 0, 1, #raw
  local seen = {}
  while i <= n do
    local c = string.byte(raw, i)
    if c == 34 then -- '"'
      local j = i + 1
      while true do
        local s = string.find(raw, '["\\\\]', j)
        if not s then error('gatehouse rotate: unterminated string in the session record') end
        if string.byte(raw, s) == 92 then j = s + 2 else j = s; break end
      end
      if depth == 1 then
        local _, colon = string.find(raw, '^%s*:%s*', j + 1)
        if colon then
          local key = cjson.decode(string.sub(raw, i, j))
          if updates[key] ~= nil then
            local vs, ve = string.find(raw, '^-?%d[%d%.eE+-]*', colon + 1)
            if not vs then error('gatehouse rotate: session field ' .. key .. ' is not a number') end
            table.insert(out, string.sub(raw, from, vs - 1))
            table.insert(out, fmt(updates[key]))
            from = ve + 1
            seen[key] = true
            j = ve
          end
        end
      end
      i = j + 1
    else
      if c == 123 or c == 91 then depth = depth + 1 elseif c == 125 or c == 93 then depth = depth - 1 end
      i = i + 1
    end
  end
  table.insert(out, string.sub(raw, from))
  local text = table.concat(out)
  for _, key in ipairs(order) do
    if not seen[key] then
      local close = string.find(text, '}%s*$')
      local body = string.sub(text, 1, close - 1)
      local sep = ','
      if string.find(body, '^%s*{%s*$') then sep = '' end
      text = body .. sep .. cjson.encode(key) .. ':' .. fmt(updates[key]) .. string.sub(text, close)
    end
  end
  return text
end

local raw = redis.call('GET', KEYS[1])
if not raw then return { 'invalid' } end
local session = cjson.decode(raw)
local presented = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local graceMs = tonumber(ARGV[3])
local idleTtlMs = tonumber(ARGV[4])
local generation = tonumber(session['generation'])
local rotatedAt = tonumber(session['rotatedAt'])
local idleEnd = tonumber(session['idleExpiresAt'])
local absoluteEnd = tonumber(session['absoluteExpiresAt'])

if not absoluteEnd or not idleEnd or now >= absoluteEnd or now >= idleEnd then
  redis.call('DEL', KEYS[1])
  return { 'invalid' }
end
if presented == generation then
  local nextIdle = math.min(now + idleTtlMs, absoluteEnd)
  local text = patch(raw, { generation = generation + 1, rotatedAt = now, lastUsedAt = now, idleExpiresAt = nextIdle },
    { 'generation', 'rotatedAt', 'lastUsedAt', 'idleExpiresAt' })
  redis.call('SET', KEYS[1], text, 'PXAT', fmt(nextIdle))
  return { 'rotated', text }
end
if generation and rotatedAt and presented == generation - 1 and now - rotatedAt <= graceMs then
  local text = patch(raw, { lastUsedAt = now }, { 'lastUsedAt' })
  redis.call('SET', KEYS[1], text, 'PXAT', fmt(idleEnd))
  return { 'grace', text }
end
redis.call('DEL', KEYS[1])
return { 'reuse', raw }
`;

type ScriptedRedis = Redis & {
  gatehouseIncrement(key: string, windowMs: string): Promise<number>;
  gatehouseRotate(key: string, presented: string, now: string, graceMs: string, idleTtlMs: string): Promise<[string, string?]>;
};

/** Escapes Redis glob metacharacters so a prefix matches literally in SCAN MATCH. */
export function escapeGlob(text: string): string {
  return text.replace(/[\\*?[\]^-]/g, (c) => `\\${c}`);
}

/** The URL without its password, for logs and errors. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable redis url)';
  }
}

export class RedisStore implements StateStore {
  readonly kind = 'redis' as const;
  private readonly client: ScriptedRedis;
  private readonly prefix: string;
  private readonly logger: Logger;
  private readonly where: string;
  /** Whether we last saw Redis up; transitions are logged once each. */
  private up = false;
  private everUp = false;
  private downSince: number | undefined;
  private closed = false;
  private readonly onWrite?: (seconds: number) => void;

  private constructor(client: Redis, options: RedisStoreOptions, where: string) {
    this.client = client as ScriptedRedis;
    this.onWrite = options.onWrite;
    this.prefix = options.keyPrefix;
    this.logger = options.logger;
    this.where = where;
    this.client.defineCommand('gatehouseIncrement', { numberOfKeys: 1, lua: INCREMENT_LUA });
    this.client.defineCommand('gatehouseRotate', { numberOfKeys: 1, lua: ROTATE_LUA });
    client.on('ready', () => this.markUp());
    client.on('error', (error: Error) => this.markDown(error));
    client.on('close', () => {
      if (!this.closed) this.markDown(new Error('connection closed'));
    });
  }

  /**
   * Connects to `url` (redis:// or rediss://). Waits up to `initialConnectWaitMs` for the first
   * connection; if Redis is unreachable by then the store is returned anyway (it keeps reconnecting,
   * `healthy()` is false and every call rejects with StoreUnavailableError until Redis is there).
   * A refused authentication or a malformed URL is a configuration error and throws a UserError.
   */
  static async open(url: string, options: RedisStoreOptions): Promise<RedisStore> {
    const where = redactRedisUrl(url);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UserError(`stateStore: the redis url is not a valid URL (${where})`);
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
      throw new UserError(`stateStore: the redis url must start with redis:// or rediss:// (got ${parsed.protocol}//)`);
    }
    const commandTimeout = options.commandTimeoutMs ?? 1000;
    const maxDelay = options.maxReconnectDelayMs ?? 2000;
    const clientOptions: RedisOptions = {
      lazyConnect: true,
      // Fail fast while disconnected instead of queueing commands for later.
      enableOfflineQueue: false,
      commandTimeout,
      connectTimeout: Math.max(commandTimeout, 1000),
      // Commands in flight when the connection drops are rejected, never re-sent after a reconnect.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times: number) => Math.min(100 * 2 ** Math.max(0, times - 1), maxDelay),
      keepAlive: 10_000,
      connectionName: 'gatehouse',
      // Commands issued in the same turn of the event loop (concurrent requests) share one write.
      enableAutoPipelining: true,
    };
    const client = new Redis(url, clientOptions);
    const store = new RedisStore(client, options, where);
    const waitMs = options.initialConnectWaitMs ?? 3000;
    const outcome = await new Promise<'ready' | 'timeout' | Error>((resolve) => {
      const timer = setTimeout(() => finish('timeout'), waitMs);
      const onReady = () => finish('ready');
      const onError = (error: Error) => {
        if (error.name === 'ReplyError' && !TRANSIENT_REPLY.test(error.message)) finish(error);
      };
      function finish(result: 'ready' | 'timeout' | Error) {
        clearTimeout(timer);
        client.off('ready', onReady);
        client.off('error', onError);
        resolve(result);
      }
      client.on('ready', onReady);
      client.on('error', onError);
      client.connect().catch(() => undefined); // failures arrive as 'error' events and retries
    });
    if (outcome instanceof Error) {
      store.closed = true;
      client.disconnect();
      throw new UserError(`stateStore: redis at ${where} refused the connection: ${outcome.message}`);
    }
    if (outcome === 'timeout') {
      options.logger.warn({ url: where }, 'state store: redis is unreachable at startup; OAuth endpoints answer 503 until it is reachable (retrying in the background)');
    }
    return store;
  }

  async get<T extends object>(namespace: Namespace, key: string): Promise<T | undefined> {
    const redisKey = this.key(namespace, key);
    const raw = await this.run(() => this.client.get(redisKey));
    return raw === null ? undefined : (JSON.parse(raw) as T);
  }

  async put<T extends object>(namespace: Namespace, key: string, value: T, ttlSeconds?: number): Promise<void> {
    const redisKey = this.key(namespace, key);
    const text = encodeValue(value);
    if (ttlSeconds === undefined) await this.write(() => this.client.set(redisKey, text));
    else {
      const ms = ttlMs(ttlSeconds);
      await this.write(() => this.client.set(redisKey, text, 'PX', ms));
    }
  }

  async takeOnce<T extends object>(namespace: Namespace, key: string): Promise<T | undefined> {
    const redisKey = this.key(namespace, key);
    const raw = await this.write(() => this.client.getdel(redisKey));
    return raw === null ? undefined : (JSON.parse(raw) as T);
  }

  async delete(namespace: Namespace, key: string): Promise<boolean> {
    const redisKey = this.key(namespace, key);
    return (await this.write(() => this.client.del(redisKey))) > 0;
  }

  async list<T extends object>(namespace: Namespace): Promise<Array<{ key: string; value: T }>> {
    const base = this.key(namespace, '');
    const match = `${escapeGlob(base)}*`;
    const keys = new Set<string>(); // SCAN may return a key more than once
    let cursor = '0';
    do {
      const [next, batch] = await this.run(() => this.client.scan(cursor, 'MATCH', match, 'COUNT', 1000));
      for (const k of batch) keys.add(k);
      cursor = next;
    } while (cursor !== '0');
    const all = [...keys];
    const entries: Array<{ key: string; value: T }> = [];
    for (let i = 0; i < all.length; i += 500) {
      const chunk = all.slice(i, i + 500);
      const values = await this.run(() => this.client.mget(chunk));
      chunk.forEach((redisKey, index) => {
        const raw = values[index];
        // A key that expired or was deleted between SCAN and MGET is simply not listed.
        if (raw !== null && raw !== undefined) entries.push({ key: redisKey.slice(base.length), value: JSON.parse(raw) as T });
      });
    }
    return entries;
  }

  async increment(namespace: EphemeralNamespace, key: string, ttlSeconds: number): Promise<number> {
    const redisKey = this.key(namespace, key);
    const ms = ttlMs(ttlSeconds);
    return Number(await this.write(() => this.client.gatehouseIncrement(redisKey, String(ms))));
  }

  async rotateRefresh(request: RotateRequest): Promise<RotateResult> {
    const redisKey = this.key('sessions', request.sid);
    const args = [request.presentedGeneration, request.now, request.graceMs, request.idleTtlMs].map((n) => {
      if (typeof n !== 'number' || !Number.isFinite(n)) throw new TypeError('rotateRefresh: numeric fields must be finite numbers');
      return String(n);
    }) as [string, string, string, string];
    const [status, text] = await this.write(() => this.client.gatehouseRotate(redisKey, ...args));
    if (status === 'invalid') return { status: 'invalid' };
    if ((status === 'rotated' || status === 'grace' || status === 'reuse') && typeof text === 'string') {
      return { status, session: JSON.parse(text) as SessionRecord };
    }
    throw new Error(`rotateRefresh: unexpected answer from the rotation script: ${String(status)}`);
  }

  /** True when connected and a PING answers within ~750 ms. */
  async healthy(): Promise<boolean> {
    if (this.closed || this.client.status !== 'ready') return false;
    let timer: NodeJS.Timeout | undefined;
    try {
      const pong = await Promise.race([
        this.client.ping(),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('ping timed out')), 750))),
      ]);
      this.markUp();
      return pong === 'PONG';
    } catch (error) {
      this.markDown(error as Error);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([this.client.quit(), new Promise((resolve) => (timer = setTimeout(resolve, 1000)))]);
      } catch {
        // quitting a broken connection: disconnect below
      } finally {
        clearTimeout(timer);
      }
    }
    this.client.disconnect();
  }

  /** `<keyPrefix><namespace>:<key>`: namespaces never contain ':', so the split is unambiguous. */
  private key(namespace: Namespace, key: string): string {
    if (!NAMESPACES.has(namespace)) throw new TypeError(`unknown state store namespace ${JSON.stringify(namespace)}`);
    if (typeof key !== 'string') throw new TypeError('state store keys are strings');
    return `${this.prefix}${namespace}:${key}`;
  }

  /** `run` for a write command, timed for the metrics. */
  private async write<R>(call: () => Promise<R>): Promise<R> {
    if (!this.onWrite) return this.run(call);
    const started = process.hrtime.bigint();
    try {
      return await this.run(call);
    } finally {
      this.onWrite(Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  /** Runs one Redis call; connection trouble becomes StoreUnavailableError, Redis's own errors stay. */
  private async run<R>(call: () => Promise<R>): Promise<R> {
    if (this.closed) throw new Error('the redis state store is closed');
    try {
      const result = await call();
      if (!this.up && this.client.status === 'ready') this.markUp();
      return result;
    } catch (error) {
      const err = error as Error;
      if (err?.name === 'ReplyError' && !TRANSIENT_REPLY.test(err.message)) throw err;
      if (this.closed) throw new Error('the redis state store is closed');
      this.markDown(err);
      throw new StoreUnavailableError(`redis state store unavailable (${err?.message ?? String(error)})`, { cause: error });
    }
  }

  private markUp(): void {
    if (this.up || this.closed) return;
    this.up = true;
    if (!this.everUp) {
      this.everUp = true;
      this.logger.info({ url: this.where, keyPrefix: this.prefix }, 'state store: redis connected');
    } else {
      this.logger.info({ url: this.where, downForMs: this.downSince === undefined ? undefined : Date.now() - this.downSince }, 'state store: redis reachable again');
    }
    this.downSince = undefined;
  }

  private markDown(error: Error): void {
    if (this.closed) return;
    if (!this.up) return; // never up yet (open logs that) or already reported
    this.up = false;
    this.downSince = Date.now();
    this.logger.warn({ url: this.where, err: error?.message }, 'state store: redis unreachable; OAuth endpoints answer 503 and reconnection is retried in the background');
  }
}

function ttlMs(ttlSeconds: number): number {
  if (typeof ttlSeconds !== 'number' || !Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
    throw new RangeError(`ttlSeconds must be a positive number of seconds, got ${String(ttlSeconds)}`);
  }
  return Math.max(1, Math.round(ttlSeconds * 1000));
}

function encodeValue(value: unknown): string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError('state store values must be plain JSON objects');
  }
  return JSON.stringify(value);
}
