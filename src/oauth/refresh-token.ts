/**
 * Refresh tokens are DERIVED, never stored (DESIGN.md §7, store/types.ts `SessionRecord`).
 *
 * Format (ASCII, about 90 characters):
 *
 *     <sid> "." <generation> "." <mac>
 *
 * - `sid`: the refresh-token family id, 256-bit random as base64url (43 characters, `newSid()`);
 *   already URL-safe, so it is used as is rather than encoded a second time;
 * - `generation`: the rotation counter as a canonical decimal integer (no sign, no leading zeros);
 * - `mac`: base64url(HMAC-SHA256(refreshKey, `<sid>.<generation>`)), 43 characters.
 *
 * `refreshKey` = HKDF-SHA256(jwt secret, salt = empty, info = "gatehouse refresh token v1", 32 bytes),
 * derived once, so the access-token key and the refresh-token key are independent.
 *
 * The store keeps only (sid, generation): the token's 256 bits of unguessability are in the MAC, and
 * whoever holds the store alone cannot mint a token. Re-deriving generation n gives back exactly the
 * token issued for it, which is how the grace window returns "the same successor" with no token at
 * rest. Revoking a family deletes its session record; the token then still parses but names a family
 * that does not exist.
 */
import { createHmac, createSecretKey, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { randomIdentifier } from '../crypto/random.js';

const INFO = 'gatehouse refresh token v1';
const SID = /^[A-Za-z0-9_-]{16,128}$/;
const GENERATION = /^(0|[1-9][0-9]{0,15})$/;
const MAC = /^[A-Za-z0-9_-]{43}$/;
const MAX_LENGTH = 256;

/** A new refresh-token family id: 256-bit random, base64url. */
export function newSid(): string {
  return randomIdentifier(32);
}

export class RefreshTokens {
  private readonly key: KeyObject;

  constructor(secret: Uint8Array) {
    if (!(secret instanceof Uint8Array) || secret.byteLength < 32) {
      throw new Error('RefreshTokens: the secret must be at least 32 bytes');
    }
    this.key = createSecretKey(Buffer.from(hkdfSync('sha256', secret, new Uint8Array(0), INFO, 32)));
  }

  /** The refresh token of generation `generation` of family `sid`. */
  mint(sid: string, generation: number): string {
    if (!SID.test(sid)) throw new TypeError('RefreshTokens.mint: sid must be 16-128 base64url characters');
    if (!Number.isSafeInteger(generation) || generation < 0) {
      throw new TypeError('RefreshTokens.mint: generation must be a non-negative safe integer');
    }
    const body = `${sid}.${generation}`;
    return `${body}.${this.mac(body).toString('base64url')}`;
  }

  /**
   * The family and generation a token names, after checking its MAC in constant time; `undefined`
   * for anything malformed or forged (including tokens minted with another secret).
   */
  parse(token: string): { sid: string; generation: number } | undefined {
    if (typeof token !== 'string' || token.length > MAX_LENGTH) return undefined;
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const [sid, generationText, macText] = parts as [string, string, string];
    if (!SID.test(sid) || !GENERATION.test(generationText) || !MAC.test(macText)) return undefined;
    const generation = Number(generationText);
    if (!Number.isSafeInteger(generation)) return undefined;

    const expected = this.mac(`${sid}.${generationText}`);
    const presented = Buffer.from(macText, 'base64url');
    if (presented.length !== expected.length) return undefined;
    if (!timingSafeEqual(presented, expected)) return undefined;
    // 43 base64url characters carry 258 bits: refuse the non-canonical spellings of a valid MAC.
    // (Only reached with a genuine MAC, so this comparison leaks nothing.)
    if (presented.toString('base64url') !== macText) return undefined;
    return { sid, generation };
  }

  private mac(body: string): Buffer {
    return createHmac('sha256', this.key).update(body, 'utf8').digest();
  }
}
