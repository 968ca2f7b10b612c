import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The one constant-time equality check for secrets (static tokens, verifiers, client secrets).
 * Both sides are hashed first so the comparison takes the same time whatever their lengths.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = createHash('sha256').update(a, 'utf8').digest();
  const right = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(left, right) && a.length === b.length;
}
