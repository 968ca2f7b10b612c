import type { IncomingMessage } from 'node:http';
import type { OAuthAsConfig, PreRegisteredClientConfig } from '../config/types.js';
import type { StateStore } from '../store/types.js';
import type { Logger } from '../log.js';
import { constantTimeEqual } from '../crypto/compare.js';
import { hashToken } from '../crypto/random.js';
import { invalidClient, invalidRequest } from './errors.js';
import type { ClientMetadataDocuments } from './cimd.js';

export type TokenEndpointAuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post';

/** A registered client as the store keeps it (never the secret itself). */
export interface ClientRecord {
  client_id: string;
  client_name?: string;
  client_uri?: string;
  software_id?: string;
  software_version?: string;
  redirect_uris: string[];
  grant_types: string[];
  scope?: string;
  token_endpoint_auth_method: TokenEndpointAuthMethod;
  /** SHA-256 of the client secret, for confidential clients. */
  client_secret_hash?: string;
  client_id_issued_at: number;
  /** ms since epoch */
  createdAt: number;
  lastUsedAt?: number;
  /** When the client first received a token; unset means "never used" (reaped after a day). */
  firstTokenAt?: number;
  source: 'dcr' | 'config' | 'cimd';
}

/**
 * Every client the Authorization Server knows: pre-registered ones (config and the
 * MCP_AUTH_SERVER_CONFIG seed, read-only, in memory), Client ID Metadata Documents (https
 * client_ids, fetched and cached), and dynamically registered ones (in the state store).
 */
export class ClientRegistry {
  private readonly preRegistered = new Map<string, ClientRecord>();

  constructor(
    private readonly store: StateStore,
    private readonly config: OAuthAsConfig,
    private readonly cimd: ClientMetadataDocuments,
    private readonly logger: Logger,
    seeds: PreRegisteredClientConfig[],
  ) {
    for (const client of [...config.clients, ...seeds]) {
      const method: TokenEndpointAuthMethod = client.token_endpoint_auth_method ?? (client.client_secret ? 'client_secret_basic' : 'none');
      this.preRegistered.set(client.client_id, {
        client_id: client.client_id,
        client_name: client.client_name,
        redirect_uris: [...client.redirect_uris],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: method,
        client_secret_hash: client.client_secret ? hashToken(client.client_secret) : undefined,
        client_id_issued_at: 0,
        createdAt: 0,
        source: 'config',
      });
    }
  }

  get hasConfidentialClients(): boolean {
    return [...this.preRegistered.values()].some((c) => c.client_secret_hash);
  }

  isPreRegistered(clientId: string): boolean {
    return this.preRegistered.has(clientId);
  }

  /** The pre-registered clients (config and the MCP_AUTH_SERVER_CONFIG seed), read-only; for the admin surface. */
  preRegisteredClients(): readonly Readonly<ClientRecord>[] {
    return [...this.preRegistered.values()];
  }

  /** Looks a client up; undefined when unknown. A CIMD fetch failure throws an OAuthError. */
  async get(clientId: string): Promise<ClientRecord | undefined> {
    const pre = this.preRegistered.get(clientId);
    if (pre) return pre;
    if (clientId.startsWith('https://')) {
      if (!this.config.clientIdMetadataDocuments.enabled) return undefined;
      return this.cimd.resolve(clientId);
    }
    return this.store.get<ClientRecord>('clients', clientId);
  }

  /**
   * Whether tokens of this client may still be used: pre-registered clients always (until the
   * config changes), metadata-document clients while documents are enabled, stored ones while stored.
   */
  async exists(clientId: string): Promise<boolean> {
    if (this.preRegistered.has(clientId)) return true;
    if (clientId.startsWith('https://')) return this.config.clientIdMetadataDocuments.enabled;
    return (await this.store.get<ClientRecord>('clients', clientId)) !== undefined;
  }

  /** Records use of a stored client (first token, last use) so reaping spares it. */
  async touch(client: ClientRecord, now = Date.now()): Promise<void> {
    if (client.source !== 'dcr') return;
    // Avoid a durable write per request: last use is recorded with minute precision. The record
    // was read from the store moments ago to authenticate the client: no second read to decide.
    const recentlyUsed = (record: ClientRecord) => record.firstTokenAt && record.lastUsedAt && now - record.lastUsedAt < 60_000;
    if (recentlyUsed(client)) return;
    const current = await this.store.get<ClientRecord>('clients', client.client_id);
    if (!current || recentlyUsed(current)) return;
    await this.store.put('clients', client.client_id, { ...current, firstTokenAt: current.firstTokenAt ?? now, lastUsedAt: now });
  }

  /**
   * Client authentication at the token and revocation endpoints (RFC 6749 §2.3): HTTP Basic, or
   * client_id/client_secret in the body, or client_id alone for public clients. A confidential
   * client must present its secret by its registered method; compared in constant time.
   */
  async authenticate(req: IncomingMessage, form: Map<string, string>): Promise<ClientRecord> {
    const basic = parseBasic(req.headers.authorization);
    const bodyId = form.get('client_id');
    const bodySecret = form.get('client_secret');
    if (basic && bodySecret !== undefined) throw invalidRequest('use one client authentication method, not both');
    if (basic && bodyId !== undefined && bodyId !== basic.id) throw invalidRequest('client_id does not match the Authorization header');
    const clientId = basic?.id ?? bodyId;
    if (!clientId) throw invalidClient('client authentication required (client_id)', Boolean(basic));
    const client = await this.get(clientId);
    if (!client) throw invalidClient('unknown client', Boolean(basic));
    if (client.client_secret_hash) {
      const secret = basic?.secret ?? bodySecret;
      const method = basic ? 'client_secret_basic' : 'client_secret_post';
      if (secret === undefined) throw invalidClient('this client must authenticate with its secret', Boolean(basic));
      if (!constantTimeEqual(hashToken(secret), client.client_secret_hash)) throw invalidClient('client authentication failed', Boolean(basic));
      if (client.token_endpoint_auth_method !== method && client.source === 'dcr') {
        this.logger.debug({ clientId, method }, 'client used another secret method than registered');
      }
    } else if (basic?.secret || bodySecret) {
      // A public client presenting a secret is a misconfiguration; refusing is safer than ignoring.
      throw invalidClient('this client is public and has no secret', Boolean(basic));
    }
    return client;
  }

  /** Deletes stored clients never used within `unusedClientTtlSeconds`, or idle past `clientIdleTtlSeconds`. */
  async reap(now = Date.now()): Promise<number> {
    const { unusedClientTtlSeconds, clientIdleTtlSeconds } = this.config.registration;
    let removed = 0;
    for (const { key, value } of await this.store.list<ClientRecord>('clients')) {
      const unused = !value.firstTokenAt && now - value.createdAt > unusedClientTtlSeconds * 1000;
      const idle = value.firstTokenAt !== undefined && now - (value.lastUsedAt ?? value.firstTokenAt) > clientIdleTtlSeconds * 1000;
      if (unused || idle) {
        await this.store.delete('clients', key);
        removed++;
      }
    }
    if (removed) this.logger.info({ removed }, 'reaped unused or idle client registrations');
    return removed;
  }
}

function parseBasic(header: string | undefined): { id: string; secret: string } | undefined {
  if (!header || !/^Basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw invalidRequest('malformed Basic credentials');
  // RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
  try {
    return { id: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')), secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')) };
  } catch {
    throw invalidRequest('malformed Basic credentials');
  }
}
