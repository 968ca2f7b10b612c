import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The one constant-time equality check for secrets (static tokens, verifiers, client secrets).
 * Both sides are hashed first so the comparison takes the same time whatever their lengths.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  return digestsEqual(secretDigest(a), secretDigest(b));
}

/** The fixed-length digest `constantTimeEqual` compares; compute it once for a secret compared often. */
export function secretDigest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Constant-time comparison of two `secretDigest`s. */
export function digestsEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
