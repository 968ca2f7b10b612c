import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/**
 * CSRF tokens for the consent form: an expiry plus an HMAC over the expiry, the signed-in user and
 * every parameter of the authorization request, so a token is good only for that user, that client
 * and that very request, for a few minutes. Stateless (any replica can check it).
 */
export class ConsentCsrf {
  private readonly key: Buffer;

  constructor(secret: Uint8Array, private readonly ttlMs = 10 * 60_000, private readonly clock: () => number = Date.now) {
    this.key = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'gatehouse consent csrf v1', 32));
  }

  issue(binding: readonly string[]): string {
    const expires = this.clock() + this.ttlMs;
    return `${expires}.${this.mac(expires, binding)}`;
  }

  verify(token: string | undefined, binding: readonly string[]): boolean {
    if (!token) return false;
    const dot = token.indexOf('.');
    const expires = Number(token.slice(0, dot));
    if (dot < 1 || !Number.isSafeInteger(expires) || expires < this.clock()) return false;
    const expected = Buffer.from(this.mac(expires, binding));
    const given = Buffer.from(token.slice(dot + 1));
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private mac(expires: number, binding: readonly string[]): string {
    return createHmac('sha256', this.key).update(JSON.stringify([expires, ...binding])).digest('base64url');
  }
}
