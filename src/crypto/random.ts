import { randomBytes, createHash } from 'node:crypto';

/** A URL-safe random identifier or secret with `bytes` bytes of entropy. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** The at-rest form of a token or code: SHA-256, base64url. */
export function hashToken(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('base64url');
}

/**
 * A random identifier that operators will type or paste (client ids, session ids): base64url, but
 * never starting with `-`, which command lines would take for an option.
 */
export function randomIdentifier(bytes = 32): string {
  for (;;) {
    const id = randomToken(bytes);
    if (id[0] !== '-') return id;
  }
}
