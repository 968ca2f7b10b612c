/**
 * Crash safety of the Authorization Server with the file store, through the real CLI: a burst of
 * concurrent registrations and refreshes, SIGKILL mid-burst, restart on the same files. The snapshot
 * must parse, every client_id the test received a 201 for must be in the snapshot or its journal and
 * still be registered, and the latest refresh token received per family must still be accepted (or
 * its predecessor within the grace window: a rotation may have become durable while its response
 * was lost to the kill).
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { FileStore } from '../../src/store/file.js';
import { FIXTURE_SERVER, ROOT, waitFor } from '../helpers/gateway.js';
import { freePort } from '../helpers/oauth.js';
import { JWT_SECRET, authorize, bearer, obtainTokens, probeMcp, refresh, register } from '../helpers/oauth-as.js';

const CLI = join(ROOT, 'bin', 'mcp.js');
const FAMILIES = 12;
const REGISTRATION_WORKERS = 8;

interface Running {
  child: ChildProcess;
  output: string[];
  exited: Promise<number | null>;
}

async function startCli(t: { teardown(fn: () => unknown): void }, configPath: string, port: number, issuer: string): Promise<Running> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', configPath, '--http', `127.0.0.1:${port}`], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitFor(`the gateway on ${port} (${output.join('').slice(-500)})`, async () => {
    if (child.exitCode !== null) throw new Error(`the gateway exited: ${output.join('')}`);
    try {
      const res = await request(`${issuer}/.well-known/oauth-authorization-server`);
      await res.body.text();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }, 20_000);
  return { child, output, exited };
}

t.test('SIGKILL mid-burst: every acknowledged registration and refresh survives', async (t) => {
  const dir = t.testdir();
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const statePath = join(dir, 'auth_server.json');
  const configPath = join(dir, 'servers.json');
  await writeFile(configPath, JSON.stringify({
    mcpServers: { fx: { command: process.execPath, args: [FIXTURE_SERVER, 'stdio'] } },
    serverAuth: {
      providers: ['oauth_as'],
      oauthAs: { issuerUrl: issuer, jwtSecret: JWT_SECRET, registration: { ratePerMinute: 100_000 }, refreshGraceSeconds: 60 },
    },
    acl: { default: 'allow', rules: [] },
    stateStore: { type: 'file', path: statePath },
  }, null, 2));

  const first = await startCli(t, configPath, port, issuer);

  // Families to refresh during the burst (set up before it).
  const families: Array<{ clientId: string; latest: string; received: number }> = [];
  for (let i = 0; i < FAMILIES; i++) {
    const { clientId, tokens } = await obtainTokens(issuer);
    families.push({ clientId, latest: tokens.refresh_token, received: 0 });
  }

  const registered: string[] = [];
  let stop = false;
  let failures = 0;
  const registrationWorker = async (w: number) => {
    for (let i = 0; !stop; i++) {
      try {
        const res = await register(issuer, { client_name: `burst-${w}-${i}`, software_id: `w${w}`, redirect_uris: [`http://127.0.0.1:${10_000 + w}/cb${i}`] });
        if (res.status === 201) registered.push(res.json.client_id as string);
      } catch {
        failures++;
        return; // the gateway is gone
      }
    }
  };
  const refreshWorker = async (family: (typeof families)[number]) => {
    while (!stop) {
      try {
        const res = await refresh(issuer, family.clientId, family.latest);
        if (res.status !== 200) throw new Error(`refresh answered ${res.status} ${res.text}`);
        family.latest = res.json.refresh_token as string;
        family.received++;
      } catch (error) {
        if ((error as Error).message.startsWith('refresh answered')) throw error;
        failures++;
        return;
      }
    }
  };
  const burst = Promise.all([
    ...Array.from({ length: REGISTRATION_WORKERS }, (_, w) => registrationWorker(w)),
    ...families.map(refreshWorker),
  ]);
  // Let the burst run until a fair amount was acknowledged, then kill without warning.
  await waitFor('acknowledged work', () => registered.length >= 40 && families.every((f) => f.received >= 3), 30_000);
  first.child.kill('SIGKILL');
  await first.exited;
  stop = true;
  await burst;
  t.comment(`acknowledged before the kill: ${registered.length} registrations, ${families.reduce((n, f) => n + f.received, 0)} refreshes; ${failures} requests cut off`);

  const text = await readFile(statePath, 'utf8');
  let state: { version: number; clients: Record<string, unknown>; sessions: Record<string, unknown> };
  t.doesNotThrow(() => (state = JSON.parse(text) as typeof state), 'the snapshot parses');
  t.equal(state!.version, 1);
  // The snapshot plus its journal, read from a copy so that the restart below replays the originals itself.
  const copy = join(dir, 'copy', 'auth_server.json');
  await mkdir(join(dir, 'copy'));
  await copyFile(statePath, copy);
  const journalBytes = await readFile(`${statePath}.journal`).catch(() => Buffer.alloc(0));
  await writeFile(`${copy}.journal`, journalBytes);
  const store = await FileStore.open(copy);
  const missing: string[] = [];
  for (const id of registered) if (!(await store.get('clients', id))) missing.push(id);
  await store.close();
  t.same(missing, [], `every acknowledged registration is in the snapshot (${text.length} bytes) or the journal (${journalBytes.length} bytes)`);

  await startCli(t, configPath, port, issuer);
  let unusable = 0;
  for (const clientId of registered) {
    const auth = await authorize(issuer, clientId, { redirectUri: undefined, params: { redirect_uri: undefined } });
    // Each burst client has one redirect URI, so redirect_uri may be omitted.
    if (auth.status !== 302 || !auth.code) unusable++;
  }
  t.equal(unusable, 0, `every acknowledged client_id (${registered.length}) still authorizes after the restart`);

  for (const [i, family] of families.entries()) {
    const res = await refresh(issuer, family.clientId, family.latest);
    t.equal(res.status, 200, `family ${i}: the latest refresh token received is accepted (${res.text.slice(0, 120)})`);
    if (res.status === 200) {
      t.equal((await probeMcp(`${issuer}/mcp`, bearer(res.json.access_token as string))).status, 200, `family ${i}: its new access token works`);
    }
  }
});
