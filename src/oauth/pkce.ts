/**
 * PKCE (RFC 7636), S256 only. `plain` is never supported: the authorize endpoint refuses any other
 * `code_challenge_method`, and the AS metadata advertises exactly `SUPPORTED_CODE_CHALLENGE_METHODS`.
 */
import { createHash } from 'node:crypto';
import { constantTimeEqual } from '../crypto/compare.js';

export const SUPPORTED_CODE_CHALLENGE_METHODS: readonly string[] = Object.freeze(['S256']);

/** An S256 challenge: base64url (no padding) of a SHA-256 digest, so exactly 43 characters. */
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
/** RFC 7636 §4.1: 43-128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`. */
const VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

export function isValidCodeChallenge(challenge: unknown): challenge is string {
  return typeof challenge === 'string' && CHALLENGE.test(challenge);
}

export function isValidCodeVerifier(verifier: unknown): verifier is string {
  return typeof verifier === 'string' && VERIFIER.test(verifier);
}

/** The S256 challenge of a verifier: BASE64URL(SHA256(ASCII(verifier))). */
export function s256Challenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** Whether `verifier` is well formed and hashes to `challenge` (compared in constant time). */
export function verifyPkceS256(verifier: string, challenge: string): boolean {
  if (!isValidCodeVerifier(verifier) || !isValidCodeChallenge(challenge)) return false;
  return constantTimeEqual(s256Challenge(verifier), challenge);
}
