import type { RotateRequest, RotateResult, SessionRecord } from './types.js';

/**
 * What a rotation does to the stored family: `next` undefined = leave it, `null` = delete it, a record
 * = store it (the caller also stores the entry so that it expires at `next.idleExpiresAt`).
 */
export interface RotationDecision {
  result: RotateResult;
  next?: SessionRecord | null;
}

/**
 * The refresh-token rotation rule, written once for every store (the Redis store mirrors it in Lua).
 * Pure: never mutates `session`. The store applies `next` atomically with the read of `session`.
 *
 * - no family, or `now` at or past its idle or absolute end → `invalid` (an expired family is deleted);
 * - the current generation → `rotated`: generation + 1, idle end slides (capped by the absolute end);
 * - the previous generation within `graceMs` of the rotation → `grace`: same successor, only
 *   `lastUsedAt` moves (the caller re-derives the successor token from sid + generation);
 * - anything else (older, previous after the window, or a generation never issued) → `reuse`: the
 *   family is deleted, and the deleted record is returned so the caller can log and revoke.
 */
export function decideRotation(session: SessionRecord | undefined, request: RotateRequest): RotationDecision {
  const { now, presentedGeneration } = request;
  if (!session) return { result: { status: 'invalid' } };
  if (now >= session.absoluteExpiresAt || now >= session.idleExpiresAt) {
    return { result: { status: 'invalid' }, next: null };
  }
  if (presentedGeneration === session.generation) {
    const updated: SessionRecord = {
      ...session,
      groups: [...session.groups],
      generation: session.generation + 1,
      rotatedAt: now,
      lastUsedAt: now,
      idleExpiresAt: Math.min(now + request.idleTtlMs, session.absoluteExpiresAt),
    };
    return { result: { status: 'rotated', session: updated }, next: updated };
  }
  if (presentedGeneration === session.generation - 1 && now - session.rotatedAt <= request.graceMs) {
    const updated: SessionRecord = { ...session, groups: [...session.groups], lastUsedAt: now };
    return { result: { status: 'grace', session: updated }, next: updated };
  }
  // Reuse of a token that is no longer valid: treat the family as stolen and revoke all of it.
  return { result: { status: 'reuse', session: { ...session, groups: [...session.groups] } }, next: null };
}
