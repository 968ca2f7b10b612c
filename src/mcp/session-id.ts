import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ClientCapabilities } from '@modelcontextprotocol/sdk/types.js';
import { randomToken } from '../crypto/random.js';

/** What a session id carries, so that any replica can take over a session it has never seen. */
export interface SessionClaims {
  /** Digest of the owner (provider, subject, client): the session answers only to that identity. */
  owner: string;
  protocolVersion: string;
  capabilities: ClientCapabilities;
}

const CAPABILITY_BITS: Array<[keyof ClientCapabilities, number]> = [['sampling', 1], ['elicitation', 2], ['roots', 4]];

/**
 * `Mcp-Session-Id` values: 128 random bits plus the session's owner digest, protocol version and
 * client capabilities, MAC'd with a key every replica derives from the same secret. A replica that
 * receives a session id it does not hold verifies it and rebuilds the session, so a load balancer
 * need not be sticky. The id is never a credential: every request is authenticated first, and the
 * owner digest must match the authenticated identity. Only visible ASCII (base64url and `.`).
 */
export class SessionIds {
  private readonly key: Buffer;

  constructor(secret: Uint8Array) {
    this.key = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'gatehouse mcp session id v1', 32));
  }

  static ownerDigest(ownerKey: string): string {
    return createHash('sha256').update(ownerKey).digest('base64url').slice(0, 22);
  }

  mint(claims: SessionClaims): string {
    let caps = 0;
    for (const [name, bit] of CAPABILITY_BITS) if (claims.capabilities[name]) caps |= bit;
    const payload = Buffer.from(JSON.stringify({ r: randomToken(16), o: claims.owner, v: claims.protocolVersion, c: caps })).toString('base64url');
    return `${payload}.${this.mac(payload)}`;
  }

  /** The claims of a genuine id; undefined for anything forged or malformed. */
  parse(id: string): SessionClaims | undefined {
    const dot = id.indexOf('.');
    if (dot < 1 || id.length > 512) return undefined;
    const payload = id.slice(0, dot);
    const given = Buffer.from(id.slice(dot + 1));
    const expected = Buffer.from(this.mac(payload));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    try {
      const data = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { o?: unknown; v?: unknown; c?: unknown };
      if (typeof data.o !== 'string' || typeof data.v !== 'string' || typeof data.c !== 'number') return undefined;
      const capabilities: ClientCapabilities = {};
      for (const [name, bit] of CAPABILITY_BITS) if (data.c & bit) (capabilities as Record<string, unknown>)[name] = {};
      return { owner: data.o, protocolVersion: data.v, capabilities };
    } catch {
      return undefined;
    }
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}

/**
 * The secret session ids are derived from: the OAuth signing secret when the Authorization Server
 * runs (every replica shares it), else the configured static tokens (identical on every replica
 * that shares the config), else a random per-process secret (sessions then stay on one replica).
 */
export function sessionSecret(jwtSecret: Uint8Array | undefined, bearerTokens: string[]): Uint8Array {
  if (jwtSecret) return jwtSecret;
  if (bearerTokens.length > 0) return createHash('sha256').update(JSON.stringify([...bearerTokens].sort())).digest();
  return randomBytes(32);
}
