import t from 'tap';
import { spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore } from '../../src/store/file.js';
import type { SessionRecord } from '../../src/store/types.js';

/**
 * Crash durability of the file store: a child process writes (puts, deletes, rotations) as fast as it
 * can and prints each acknowledged write; it is SIGKILLed mid-burst, and everything it acknowledged
 * must be in the snapshot plus the journal. The child runs the TypeScript source through tap's own
 * loader, so the test never depends on a stale dist/.
 */
const WRITER = fileURLToPath(new URL('../fixtures/store/burst.ts', import.meta.url));
const TS_LOADER = import.meta.resolve('@tapjs/typescript/import');
const ROUNDS = 3;

interface Acks {
  puts: Map<string, number>;
  deleted: Set<string>;
  /** Keys whose delete had started (it may be durable without having been acknowledged). */
  deleting: Set<string>;
  generations: Map<string, number>;
  lines: number;
}

function parseAcks(text: string): Acks {
  const acks: Acks = { puts: new Map(), deleted: new Set(), deleting: new Set(), generations: new Map(), lines: 0 };
  // Only newline-terminated lines were completely written before the kill.
  const lines = text.split('\n').slice(0, -1);
  for (const line of lines) {
    const [kind, key, generation] = line.split(' ');
    if (kind === 'put') acks.puts.set(key!, Number(/-c(\d+)$/.exec(key!)![1]));
    else if (kind === 'del') acks.deleted.add(key!);
    else if (kind === 'deleting') {
      acks.deleting.add(key!);
      continue;
    }
    else if (kind === 'rot') acks.generations.set(key!, Math.max(acks.generations.get(key!) ?? 0, Number(generation)));
    else continue;
    acks.lines++;
  }
  return acks;
}

/** Runs the writer until it has acknowledged `minAcks` writes, then SIGKILLs it; returns its stdout. */
async function crashWriter(file: string, round: number, minAcks: number, extraDelayMs: number, compactBytes?: number): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' };
  delete env.NODE_OPTIONS; // tap's process-info hook is not needed in the child
  const args = [WRITER, file, String(round), ...(compactBytes ? [String(compactBytes)] : [])];
  const child = spawn(process.execPath, ['--import', TS_LOADER, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let acked = 0;
  let killing = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    stdout += text;
    acked += text.split('\n').length - 1;
    if (!killing && acked >= minAcks) {
      killing = true;
      setTimeout(() => child.kill('SIGKILL'), extraDelayMs);
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const { code, signal } = await exited;
  clearTimeout(timer);
  if (signal !== 'SIGKILL' || !killing) throw new Error(`the writer ended on its own (code ${code}, signal ${signal}): ${stderr}`);
  return stdout;
}

/**
 * The same file each round: every round also starts from the files a killed process left behind.
 * With the default threshold the kill lands among journal appends; with a tiny one the snapshot is
 * rewritten whenever the journal reaches twice its size, so kills land among compactions too.
 */
const CASES = [
  { name: 'journal appends', compactBytes: undefined },
  // Threshold 1 byte: the journal is compacted whenever it reaches twice the snapshot.
  { name: 'frequent compactions', compactBytes: 1 },
];

for (const { name, compactBytes } of CASES) t.test(`file store: every acknowledged write survives SIGKILL mid-burst (${name})`, async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'auth_server.json');
  for (let round = 0; round < ROUNDS; round++) {
    const stdout = await crashWriter(file, round, 600 + round * 400, round * 7, compactBytes);
    const acks = parseAcks(stdout);
    const leftovers = (await readdir(dir)).filter((name) => name.endsWith('.tmp'));
    const journalBytes = (await stat(file + '.journal').catch(() => ({ size: 0 }))).size;
    if (compactBytes === undefined) t.ok(journalBytes > 0, `round ${round}: the acknowledged writes are in the journal (${journalBytes} bytes)`);

    const text = await readFile(file, 'utf8');
    let doc: { version: number; clients: Record<string, unknown>; sessions: Record<string, unknown> };
    t.doesNotThrow(() => (doc = JSON.parse(text)), `round ${round}: the file parses after the kill`);
    t.equal(doc!.version, 1, `round ${round}: version 1`);

    const store = await FileStore.open(file);
    let missing = 0;
    let wrong = 0;
    let resurrected = 0;
    for (const [key, i] of acks.puts) {
      const value = await store.get<{ i: number; round: number }>('clients', key);
      if (acks.deleted.has(key)) {
        if (value !== undefined) resurrected++;
      } else if (value === undefined) {
        if (!acks.deleting.has(key)) missing++;
      }
      else if (value.i !== i || value.round !== round) wrong++;
    }
    t.equal(missing, 0, `round ${round}: all ${acks.puts.size - acks.deleted.size} acknowledged puts (not deleted) are present`);
    t.equal(wrong, 0, `round ${round}: with their values`);
    t.equal(resurrected, 0, `round ${round}: all ${acks.deleted.size} acknowledged deletes stay deleted`);
    t.equal(acks.generations.size, 4, `round ${round}: every family rotated before the kill`);
    for (const [sid, generation] of acks.generations) {
      const stored = await store.get<SessionRecord>('sessions', sid);
      t.ok(stored && stored.generation >= generation && stored.generation <= generation + 1,
        `round ${round}: ${sid} acknowledged generation ${generation}, stored ${stored?.generation}`);
    }
    if (round > 0) {
      const previous = await store.list<{ round: number }>('clients');
      t.ok(previous.some((entry) => entry.value.round === round - 1), `round ${round}: the previous round's data is still there`);
    }
    await store.close();
    const after = (await readdir(dir)).filter((name) => name.endsWith('.tmp'));
    t.same(after, [], `round ${round}: open removed ${leftovers.length} temp file(s) left by the killed writer`);
    t.equal((await stat(file + '.journal')).size, 0, `round ${round}: the journal was replayed and compacted`);
    t.comment(`round ${round}: ${acks.lines} acknowledged writes, ${leftovers.length} temp file(s) left by the kill, snapshot ${text.length} bytes, journal ${journalBytes} bytes`);
  }
});
