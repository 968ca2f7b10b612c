import { readFile } from 'node:fs/promises';

type Section = Record<string, { value: Record<string, unknown>; expiresAt?: number }>;
export interface StateOnDisk {
  clients: Section;
  consents: Section;
  sessions: Section;
}

/**
 * The file store's state as it is on disk: the snapshot `<path>` with its journal `<path>.journal`
 * replayed over it (src/store/README.md). Read-only, so it can look at a running gateway's files
 * (opening a FileStore would compact them). Either file may be missing; a torn last line is skipped.
 */
export async function readStateFiles(statePath: string): Promise<StateOnDisk> {
  const snapshot = await readFile(statePath, 'utf8').catch(() => undefined);
  const doc = (snapshot ? JSON.parse(snapshot) : {}) as Partial<StateOnDisk>;
  const state: StateOnDisk = { clients: { ...doc.clients }, consents: { ...doc.consents }, sessions: { ...doc.sessions } };
  for (const line of (await readStateText(`${statePath}.journal`)).split('\n').slice(0, -1)) {
    let record: { ns: keyof StateOnDisk; key: string; value?: Record<string, unknown>; expiresAt?: number; deleted?: true };
    try {
      record = JSON.parse(line);
    } catch {
      continue;
    }
    if (record.deleted || !record.value) delete state[record.ns][record.key];
    else state[record.ns][record.key] = record.expiresAt === undefined ? { value: record.value } : { value: record.value, expiresAt: record.expiresAt };
  }
  return state;
}

/** The text of a state file ('' when it does not exist). */
export async function readStateText(file: string): Promise<string> {
  return readFile(file, 'utf8').catch(() => '');
}
