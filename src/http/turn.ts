import type { Writable } from 'node:stream';

let corked: Writable[] | undefined;

/**
 * Lets the first write of an event-loop turn leave at once and holds the writes of the rest of the
 * turn, on whatever socket, until the turn ends, when they leave together. A peer process woken by
 * the first write then finds the others already there, instead of being woken (and, on a busy
 * machine, scheduled) once per message. Call it just before writing to `stream`.
 */
export function corkUntilTurnEnd(stream: Writable): void {
  if (corked) {
    stream.cork();
    corked.push(stream);
    return;
  }
  corked = [];
  setImmediate(uncorkAll);
}

function uncorkAll(): void {
  const streams = corked!;
  corked = undefined;
  for (const stream of streams) stream.uncork();
}
