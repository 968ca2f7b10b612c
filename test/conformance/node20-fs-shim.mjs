// Stand-in for `fs` inside the conformance CLI bundle on Node 20 (see node20-hooks.mjs).
// Everything is the real node:fs; only `globSync` (added in Node 22) is supplied when missing.
// The bundle calls it only in `conformance tier-check`, which this project never runs.
import fs from 'node:fs';

export * from 'node:fs';
export default fs;

export const globSync =
  fs.globSync ??
  function globSync() {
    throw new Error('fs.globSync needs Node >= 22 (only `conformance tier-check` uses it)');
  };
