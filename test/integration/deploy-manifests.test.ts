import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import ipaddr from 'ipaddr.js';
import { findBinary } from '../helpers/system.js';
import { parseInlineSeed } from '../../src/store/index.js';

/**
 * The deployment files under deploy/ (deploy/README.md), checked without a cluster and without
 * Docker:
 *
 * - Kubernetes: every manifest, after rendering each kustomization, is validated against the
 *   Kubernetes OpenAPI schemas shipped by the `kubernetes-models` package (ajv validators compiled
 *   from the Kubernetes 1.3x OpenAPI document: types, enums, required fields, formats), plus a
 *   strict unknown-field check (what `kubectl apply --validate=strict` refuses), done by
 *   type-checking each object against the same package's TypeScript declarations with the
 *   TypeScript compiler's excess-property check. No network at test time.
 * - kustomize: rendered here by the small subset the manifests use (`resources` files and
 *   directories, JSON6902 `patches` with a `target`, `replicas`); anything else in a
 *   kustomization.yaml is an error, so the manifests cannot drift past what is rendered. When a
 *   `kubectl` with kustomize is on PATH the same output is compared with `kubectl kustomize`
 *   (not a CI dependency: Debian's kubernetes-client is too old for `patches`/`replicas`).
 * - Every servers.json (deploy/examples/*.json, the ConfigMaps' embedded documents, compose's)
 *   passes `mcp config check` (the compiled CLI) with dummy values for its ${VAR}s.
 * - oauth2-proxy: the exact skip_auth_routes, /oauth/authorize not skipped, identity headers on,
 *   the client's Authorization header left alone.
 * - Dockerfile: text checks only; `docker build` is not run here (no Docker engine).
 * The nginx example is tested end to end by nginx-e2e.test.ts.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const K8S = join(DEPLOY, 'kubernetes');
const BIN = join(ROOT, 'bin', 'mcp.js');

type Obj = Record<string, any>;

// ---------------------------------------------------------------------------------------------
// YAML

function parseYamlFile(file: string): Obj[] {
  const text = readFileSync(file, 'utf8');
  return parseYamlText(text, file);
}

function parseYamlText(text: string, source: string): Obj[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true, strict: true });
  const out: Obj[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    if (doc.warnings.length > 0) throw new Error(`${source}: ${doc.warnings.map((e) => e.message).join('; ')}`);
    const value = doc.toJS();
    if (value === null || value === undefined) continue;
    out.push(value);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The kustomize subset

const KUSTOMIZATION_KEYS = new Set(['apiVersion', 'kind', 'resources', 'patches', 'replicas']);

interface Target { group?: string; version?: string; kind: string; name: string }

function groupOf(apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
}

function idOf(o: Obj): string {
  return `${groupOf(o.apiVersion)}/${o.kind}/${o.metadata?.name}`;
}

function matches(o: Obj, target: Target): boolean {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  return o.kind === target.kind && o.metadata?.name === target.name
    && (target.group === undefined || target.group === group)
    && (target.version === undefined || target.version === version);
}

/** Renders a kustomization directory with the subset described above. */
export function renderKustomization(dir: string): Obj[] {
  const file = join(dir, 'kustomization.yaml');
  const [k] = parseYamlFile(file);
  if (!k) throw new Error(`${file}: empty`);
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_KEYS.has(key)) throw new Error(`${file}: "${key}" is outside the kustomize subset this test renders (${[...KUSTOMIZATION_KEYS].join(', ')})`);
  }
  if (k.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || k.kind !== 'Kustomization') throw new Error(`${file}: not a kustomize.config.k8s.io/v1beta1 Kustomization`);
  const out: Obj[] = [];
  for (const entry of k.resources ?? []) {
    const path = resolve(dir, entry);
    if (!existsSync(path)) throw new Error(`${file}: resource ${entry} does not exist`);
    out.push(...(statSync(path).isDirectory() ? renderKustomization(path) : parseYamlFile(path)));
  }
  const seen = new Set<string>();
  for (const o of out) {
    if (seen.has(idOf(o))) throw new Error(`${file}: ${idOf(o)} is defined twice`);
    seen.add(idOf(o));
  }
  for (const patch of k.patches ?? []) {
    const keys = Object.keys(patch).sort().join(',');
    if (keys !== 'path,target') throw new Error(`${file}: a patch must have exactly "path" and "target" (JSON6902), got ${keys}`);
    const targets = out.filter((o) => matches(o, patch.target));
    if (targets.length !== 1) throw new Error(`${file}: patch ${patch.path} targets ${JSON.stringify(patch.target)}, which matches ${targets.length} resources`);
    const [ops] = parseYamlFile(resolve(dir, patch.path));
    if (!Array.isArray(ops)) throw new Error(`${file}: patch ${patch.path} is not a JSON6902 operation list`);
    const index = out.indexOf(targets[0]!);
    out[index] = applyJson6902(targets[0]!, ops, `${relative(ROOT, resolve(dir, patch.path))}`);
  }
  for (const r of k.replicas ?? []) {
    const targets = out.filter((o) => ['Deployment', 'StatefulSet', 'ReplicaSet'].includes(o.kind) && o.metadata?.name === r.name);
    if (targets.length !== 1 || typeof r.count !== 'number') throw new Error(`${file}: replicas ${JSON.stringify(r)} matches ${targets.length} workloads`);
    targets[0]!.spec.replicas = r.count;
  }
  return out;
}

function pointer(path: string): string[] {
  if (!path.startsWith('/')) throw new Error(`JSON pointer "${path}" must start with /`);
  return path.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** RFC 6902 add / remove / replace / test (what the overlays use). Returns a new object. */
export function applyJson6902(doc: Obj, ops: Obj[], source: string): Obj {
  const root = structuredClone(doc);
  for (const [i, op] of ops.entries()) {
    const where = `${source} [${i}] ${op.op} ${op.path}`;
    const parts = pointer(op.path);
    const last = parts.pop()!;
    let parent: any = root;
    for (const p of parts) {
      parent = Array.isArray(parent) ? parent[Number(p)] : parent?.[p];
      if (parent === undefined || parent === null || typeof parent !== 'object') throw new Error(`${where}: path not found`);
    }
    const isArray = Array.isArray(parent);
    const index = last === '-' ? parent.length : Number(last);
    if (isArray && (!Number.isInteger(index) || index < 0)) throw new Error(`${where}: bad array index`);
    const exists = isArray ? index < parent.length : Object.prototype.hasOwnProperty.call(parent, last);
    switch (op.op) {
      case 'add':
        if (isArray) {
          if (index > parent.length) throw new Error(`${where}: index out of range`);
          parent.splice(index, 0, structuredClone(op.value));
        } else parent[last] = structuredClone(op.value);
        break;
      case 'replace':
        if (!exists) throw new Error(`${where}: nothing to replace`);
        if (isArray) parent[index] = structuredClone(op.value);
        else parent[last] = structuredClone(op.value);
        break;
      case 'remove':
        if (!exists) throw new Error(`${where}: nothing to remove`);
        if (isArray) parent.splice(index, 1);
        else delete parent[last];
        break;
      case 'test': {
        const value = isArray ? parent[index] : parent[last];
        if (!isDeepStrictEqual(value, op.value)) throw new Error(`${where}: test failed (found ${JSON.stringify(value)})`);
        break;
      }
      default:
        throw new Error(`${where}: operation outside the subset (add, remove, replace, test)`);
    }
  }
  return root;
}

// ---------------------------------------------------------------------------------------------
// Kubernetes schema validation

/** kubernetes-models: the compiled OpenAPI validator of `apiVersion`/`kind`. Throws on error. */
async function validateSchema(o: Obj): Promise<string[]> {
  if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') return ['apiVersion and kind are required'];
  let mod: Obj;
  try {
    mod = await import(`kubernetes-models/${o.apiVersion}/${o.kind}`);
  } catch {
    return [`unknown apiVersion/kind ${o.apiVersion} ${o.kind} (not in kubernetes-models)`];
  }
  const Model = mod[o.kind];
  try {
    new Model(o).validate();
    return [];
  } catch (error) {
    return [(error as Error).message];
  }
}

const VIRTUAL = join(ROOT, 'test', 'integration', '__deploy_manifests_strict__.mts');

/**
 * Strict fields: each object is assigned to the package's interface for its kind in a virtual
 * TypeScript module; the compiler's excess-property check reports every unknown field at any
 * depth (a typo such as `replica:` or `readinessprobe:`), and type errors on the way.
 * Returns the problems per object, in order.
 */
function strictFieldCheck(objects: Obj[]): string[][] {
  const lines: string[] = [];
  const ranges: Array<[number, number]> = [];
  objects.forEach((o, i) => {
    const spec = `kubernetes-models/${o.apiVersion}/${o.kind}`;
    lines.push(`import type { I${o.kind} as T${i} } from ${JSON.stringify(spec)};`);
  });
  objects.forEach((o, i) => {
    const block = `export const r${i}: T${i} = ${JSON.stringify(o, null, 1)};`.split('\n');
    ranges.push([lines.length, lines.length + block.length - 1]);
    lines.push(...block);
  });
  const text = lines.join('\n') + '\n';
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
    skipLibCheck: true,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) =>
    resolve(fileName) === VIRTUAL ? ts.createSourceFile(fileName, text, languageVersion, true) : getSourceFile(fileName, languageVersion, onError, shouldCreate);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (fileName) => resolve(fileName) === VIRTUAL || fileExists(fileName);
  const readFile = host.readFile.bind(host);
  host.readFile = (fileName) => (resolve(fileName) === VIRTUAL ? text : readFile(fileName));
  const program = ts.createProgram([VIRTUAL], options, host);
  const problems: string[][] = objects.map(() => []);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    if (!d.file || resolve(d.file.fileName) !== VIRTUAL || d.start === undefined) {
      problems.forEach((p) => p.push(`(global) ${message}`));
      continue;
    }
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const owner = ranges.findIndex(([a, b]) => line >= a && line <= b);
    const lineText = text.split('\n')[line]?.trim() ?? '';
    if (owner === -1) problems.forEach((p) => p.push(`${message} (${lineText})`));
    else problems[owner]!.push(`${message} (at ${lineText})`);
  }
  return problems;
}

async function validateAll(objects: Obj[]): Promise<Map<Obj, string[]>> {
  const strict = strictFieldCheck(objects);
  const result = new Map<Obj, string[]>();
  for (const [i, o] of objects.entries()) result.set(o, [...(await validateSchema(o)), ...strict[i]!]);
  return result;
}

// ---------------------------------------------------------------------------------------------
// servers.json and `mcp config check`

function envRefs(text: string): string[] {
  return [...new Set([...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}/g)].filter((m) => m[2] === undefined).map((m) => m[1]!))];
}

function dummyValue(name: string): string {
  if (name === 'REDIS_URL') return 'redis://127.0.0.1:6379/0';
  if (name === 'MCP_JWT_SECRET') return 'dummy-jwt-secret-0123456789abcdefghijklmnopqrstuvwxyz';
  return `dummy-${name.toLowerCase()}-0123456789abcdef`;
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

async function configCheck(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = Object.fromEntries(envRefs(readFileSync(file, 'utf8')).map((n) => [n, dummyValue(n)]));
  return run(['config', 'check', '--config', file], env);
}

// ---------------------------------------------------------------------------------------------
// oauth2-proxy config (the TOML subset it is written in: key = string | bool | [strings])

function parseOauth2ProxyCfg(text: string): Record<string, string | boolean | string[]> {
  const out: Record<string, string | boolean | string[]> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-z_]+)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new Error(`oauth2-proxy.cfg line ${i + 1}: not "key = value": ${line}`);
    const key = m[1]!;
    let value = m[2]!;
    if (key in out) throw new Error(`oauth2-proxy.cfg: ${key} set twice`);
    if (value.startsWith('[')) {
      while (!value.trimEnd().endsWith(']')) {
        i++;
        if (i >= lines.length) throw new Error(`oauth2-proxy.cfg: unterminated array for ${key}`);
        const next = lines[i]!.trim();
        if (!next.startsWith('#')) value += next;
      }
      out[key] = JSON.parse(value.replace(/,\s*]$/, ']')) as string[];
    } else if (value === 'true' || value === 'false') {
      out[key] = value === 'true';
    } else if (value.startsWith('"')) {
      const end = value.lastIndexOf('"');
      const rest = value.slice(end + 1).trim();
      if (rest !== '' && !rest.startsWith('#')) throw new Error(`oauth2-proxy.cfg line ${i + 1}: trailing text`);
      out[key] = JSON.parse(value.slice(0, end + 1)) as string;
    } else {
      throw new Error(`oauth2-proxy.cfg line ${i + 1}: unsupported value for ${key}`);
    }
  }
  return out;
}

function find(objects: Obj[], kind: string, name: string): Obj {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found) throw new Error(`${kind}/${name} not rendered`);
  return found;
}

function container(deployment: Obj): Obj {
  return deployment.spec.template.spec.containers[0];
}

// ---------------------------------------------------------------------------------------------

const KUSTOMIZATIONS = {
  base: join(K8S, 'base'),
  single: join(K8S, 'overlays', 'single'),
  ha: join(K8S, 'overlays', 'ha'),
  'oauth2-proxy': join(DEPLOY, 'oauth2-proxy'),
} as const;

const rendered = Object.fromEntries(Object.entries(KUSTOMIZATIONS).map(([name, dir]) => [name, renderKustomization(dir)])) as Record<keyof typeof KUSTOMIZATIONS, Obj[]>;

t.test('every rendered Kubernetes manifest passes the Kubernetes schemas (kubernetes-models) and the strict field check', async (t) => {
  for (const [name, objects] of Object.entries(rendered)) {
    t.ok(objects.length > 0, `${name}: rendered ${objects.length} objects`);
    const results = await validateAll(objects);
    for (const [o, problems] of results) t.same(problems, [], `${name}: ${o.kind}/${o.metadata?.name}`);
  }
});

t.test('the validation catches broken manifests', async (t) => {
  const deployment = find(rendered.base, 'Deployment', 'gatehouse');
  const cases: Array<[string, (d: Obj) => void, RegExp]> = [
    ['a typo in a field name', (d) => { d.spec.replica = 2; }, /'"?replica"?' does not exist in type 'IDeploymentSpec'/],
    ['a typo deep in the pod spec', (d) => { container(d).readinessprobe = container(d).readinessProbe; }, /'"?readinessprobe"?' does not exist in type 'IContainer'/],
    ['a string where the schema wants an integer', (d) => { container(d).ports[0].containerPort = '8080'; }, /containerPort must be integer|not assignable to type 'number'/],
    ['a missing required field', (d) => { delete d.spec.selector; }, /must have required property '?selector'?/],
    ['a value outside an enum', (d) => { d.spec.strategy.type = 'BlueGreen'; }, /strategy\/type|BlueGreen/],
  ];
  const broken = cases.map(([, breakIt]) => {
    const copy = structuredClone(deployment);
    breakIt(copy);
    return copy;
  });
  const results = await validateAll(broken);
  cases.forEach(([what, , expected], i) => {
    const problems = results.get(broken[i]!)!;
    t.ok(problems.length > 0, `${what} is refused`);
    t.match(problems.join('\n'), expected, `${what}: ${problems.join(' | ')}`);
  });
  const unknownKind = { apiVersion: 'apps/v1', kind: 'Deploymnet', metadata: { name: 'x' } };
  t.match((await validateAll([unknownKind])).get(unknownKind)!.join('\n'), /unknown apiVersion\/kind/, 'an unknown kind is refused');

  t.throws(() => applyJson6902({ spec: { template: { spec: { volumes: [{ name: 'config' }] } } } }, [{ op: 'test', path: '/spec/template/spec/volumes/2/name', value: 'state' }], 'x'), /path not found|test failed/, 'a patch whose anchor moved fails the rendering');
  t.throws(() => applyJson6902({ spec: {} }, [{ op: 'remove', path: '/spec/maxUnavailable' }], 'x'), /nothing to remove/);
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-kustomize-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'kustomization.yaml'), 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\ncommonLabels: { a: b }\n');
  t.throws(() => renderKustomization(dir), /outside the kustomize subset/, 'a kustomize feature the renderer does not implement is refused, not ignored');
});

t.test('base: the gateway Deployment follows the runtime contract', async (t) => {
  const d = find(rendered.base, 'Deployment', 'gatehouse');
  const pod = d.spec.template.spec;
  const c = container(d);
  t.equal(c.livenessProbe.httpGet.path, '/healthz');
  t.equal(c.readinessProbe.httpGet.path, '/readyz');
  t.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, 'resources');
  t.equal(pod.securityContext.runAsNonRoot, true);
  t.equal(pod.securityContext.runAsUser, 10001);
  t.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
  t.equal(c.securityContext.readOnlyRootFilesystem, true);
  t.equal(c.securityContext.allowPrivilegeEscalation, false);
  t.same(c.securityContext.capabilities.drop, ['ALL']);
  t.same(c.args, ['serve', '--config', '/etc/gatehouse/servers.json', '--http', '0.0.0.0:8080', '--insecure'], 'the image CMD');

  const mounts = Object.fromEntries(c.volumeMounts.map((m: Obj) => [m.mountPath, m]));
  const volumes = Object.fromEntries(pod.volumes.map((v: Obj) => [v.name, v]));
  t.equal(volumes[mounts['/etc/gatehouse'].name].configMap.name, 'gatehouse-config', 'servers.json from the ConfigMap');
  t.notOk(mounts['/etc/gatehouse'].subPath, 'mounted as a directory, so ConfigMap edits reach the pod');
  t.ok(volumes[mounts['/tmp'].name].emptyDir, '/tmp is an emptyDir');
  t.ok(mounts['/var/lib/gatehouse'], 'the state volume');
  t.same(pod.volumes.map((v: Obj) => v.name), ['config', 'tmp', 'state'], 'the volume order the overlays patch by index');
  t.equal(c.env.find((e: Obj) => e.name === 'MCP_AUTH_SERVER_PATH')?.value, '/var/lib/gatehouse/auth_server.json');
  t.same(c.envFrom, [{ secretRef: { name: 'gatehouse-secrets' } }], 'every Secret key is an environment variable');

  const servers = JSON.parse(find(rendered.base, 'ConfigMap', 'gatehouse-config').data['servers.json']);
  const drain = servers.http?.shutdownGraceSeconds ?? 10;
  const preStop = Number(c.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
  t.ok(pod.terminationGracePeriodSeconds > preStop + drain, `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > preStop ${preStop} + drain ${drain}`);

  const podLabels = d.spec.template.metadata.labels;
  const service = find(rendered.base, 'Service', 'gatehouse');
  t.match(podLabels, service.spec.selector, 'the Service selects the gateway pods');
  t.equal(service.spec.ports[0].targetPort, c.ports[0].name);
  const pdb = find(rendered.base, 'PodDisruptionBudget', 'gatehouse');
  t.match(podLabels, pdb.spec.selector.matchLabels);
  t.equal(pdb.spec.maxUnavailable, 1, 'the base never blocks a drain of its single replica');
});

t.test('NetworkPolicy: only the oauth2-proxy pods reach the gateway, and trustedSourceCidrs is the proxy pod CIDR', async (t) => {
  const policy = find(rendered.base, 'NetworkPolicy', 'gatehouse');
  const gateway = find(rendered.base, 'Deployment', 'gatehouse');
  t.match(gateway.spec.template.metadata.labels, policy.spec.podSelector.matchLabels, 'applies to the gateway pods');
  t.same(policy.spec.policyTypes, ['Ingress']);
  t.equal(policy.spec.ingress.length, 1, 'one rule');
  const from = policy.spec.ingress[0].from;
  t.equal(from.length, 1, 'one peer');
  t.same(Object.keys(from[0]), ['podSelector'], 'a pod selector, no ipBlock or namespace-wide peer');
  const proxy = find(rendered['oauth2-proxy'], 'Deployment', 'oauth2-proxy');
  t.match(proxy.spec.template.metadata.labels, from[0].podSelector.matchLabels, 'the peer is the oauth2-proxy pods');
  t.same(policy.spec.ingress[0].ports, [{ protocol: 'TCP', port: 8080 }]);

  for (const overlay of ['single', 'ha'] as const) {
    const servers = JSON.parse(find(rendered[overlay], 'ConfigMap', 'gatehouse-config').data['servers.json']);
    const cidrs: string[] = servers.serverAuth.oauthAs.trustedSourceCidrs;
    t.ok(cidrs.length > 0 && cidrs.every((c) => ipaddr.isValidCIDR(c) && ipaddr.parseCIDR(c)[0].range() === 'private'), `${overlay}: trustedSourceCidrs ${cidrs} is a private pod CIDR (ADAPT), never 0.0.0.0/0`);
    t.ok(servers.serverAuth.providers.includes('bearer') && servers.serverAuth.providers.includes('oauth_as'));
    t.match(servers.serverAuth.oauthAs.issuerUrl, /^https:\/\//, 'the public https URL');
    t.equal(servers.serverAuth.oauthAs.jwtSecret, '${MCP_JWT_SECRET}');
    t.ok(servers.acl?.rules?.length > 0, 'an acl block');
  }
});

t.test('overlay single: one replica, Recreate, auth_server.json on a PVC', async (t) => {
  const d = find(rendered.single, 'Deployment', 'gatehouse');
  t.equal(d.spec.replicas, 1);
  t.same(d.spec.strategy, { type: 'Recreate' }, 'two pods never write one state file');
  const state = d.spec.template.spec.volumes.find((v: Obj) => v.name === 'state');
  const pvc = find(rendered.single, 'PersistentVolumeClaim', state.persistentVolumeClaim.claimName);
  t.same(pvc.spec.accessModes, ['ReadWriteOnce']);
  const servers = JSON.parse(find(rendered.single, 'ConfigMap', 'gatehouse-config').data['servers.json']);
  t.same(servers.stateStore, { type: 'file', path: '/var/lib/gatehouse/auth_server.json' }, 'the file store on the PVC mount');
});

t.test('overlay ha: three replicas, Redis with appendonly, PDB minAvailable 2', async (t) => {
  const d = find(rendered.ha, 'Deployment', 'gatehouse');
  t.equal(d.spec.replicas, 3);
  t.equal(d.spec.strategy.type, 'RollingUpdate');
  const servers = JSON.parse(find(rendered.ha, 'ConfigMap', 'gatehouse-config').data['servers.json']);
  t.same(servers.stateStore, { type: 'redis', url: '${REDIS_URL}', keyPrefix: 'gatehouse:' });
  const env: Obj[] = container(d).env;
  const names = env.map((e) => e.name);
  const url = env.find((e) => e.name === 'REDIS_URL');
  t.match(url?.value, /^redis:\/\/:\$\(REDIS_PASSWORD\)@gatehouse-redis:6379\/\d+$/);
  t.ok(names.indexOf('REDIS_PASSWORD') >= 0 && names.indexOf('REDIS_PASSWORD') < names.indexOf('REDIS_URL'), 'REDIS_PASSWORD is defined before REDIS_URL expands it');
  const pdb = find(rendered.ha, 'PodDisruptionBudget', 'gatehouse');
  t.equal(pdb.spec.minAvailable, 2);
  t.notOk('maxUnavailable' in pdb.spec);

  const redis = find(rendered.ha, 'StatefulSet', 'gatehouse-redis');
  const args: string[] = container(redis).args;
  const flag = (name: string) => args[args.indexOf(name) + 1];
  t.equal(flag('--appendonly'), 'yes');
  t.equal(flag('--maxmemory-policy'), 'noeviction', 'Redis never evicts OAuth state');
  t.equal(flag('--dir'), '/data');
  t.ok(redis.spec.volumeClaimTemplates.some((v: Obj) => v.metadata.name === 'data'), 'data on a PVC');
  const service = find(rendered.ha, 'Service', 'gatehouse-redis');
  t.match(redis.spec.template.metadata.labels, service.spec.selector);
  const policy = find(rendered.ha, 'NetworkPolicy', 'gatehouse-redis');
  t.match(d.spec.template.metadata.labels, policy.spec.ingress[0].from[0].podSelector.matchLabels, 'only the gateway reaches Redis');
});

t.test('Secrets: every ${VAR} of the ConfigMaps is provided, and MCP_AUTH_SERVER_CONFIG parses', async (t) => {
  for (const overlay of ['single', 'ha'] as const) {
    const objects = rendered[overlay];
    const d = find(objects, 'Deployment', 'gatehouse');
    const provided = new Set<string>();
    for (const from of container(d).envFrom ?? []) for (const key of Object.keys(find(objects, 'Secret', from.secretRef.name).stringData)) provided.add(key);
    for (const e of container(d).env ?? []) provided.add(e.name);
    const text = find(objects, 'ConfigMap', 'gatehouse-config').data['servers.json'];
    for (const name of envRefs(text)) t.ok(provided.has(name), `${overlay}: \${${name}} is set in the pod`);
  }
  const secret = find(rendered.base, 'Secret', 'gatehouse-secrets');
  t.ok(secret.stringData.MCP_JWT_SECRET.includes('REPLACE_ME'), 'a template: placeholders, no real secret');
  t.doesNotThrow(() => parseInlineSeed(secret.stringData.MCP_AUTH_SERVER_CONFIG), 'the gateway accepts the seed');
});

t.test('every servers.json under deploy/ passes `mcp config check`', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-deploy-check-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files: string[] = readdirSync(join(DEPLOY, 'examples')).filter((f) => f.endsWith('.json')).map((f) => join(DEPLOY, 'examples', f));
  t.ok(files.length >= 3, `${files.length} examples`);
  files.push(join(DEPLOY, 'compose', 'servers.json'));
  for (const overlay of ['base', 'single', 'ha'] as const) {
    const file = join(dir, `${overlay}-configmap-servers.json`);
    writeFileSync(file, find(rendered[overlay], 'ConfigMap', 'gatehouse-config').data['servers.json']);
    files.push(file);
  }
  // In parallel: each check is a process start of the compiled CLI.
  const results = await Promise.all(files.map((file) => configCheck(file)));
  for (const [i, file] of files.entries()) {
    const { code, stdout, stderr } = results[i]!;
    t.equal(code, 0, `${relative(ROOT, file).startsWith('..') ? file : relative(ROOT, file)}: ${stdout.trim()} ${stderr.trim()}`);
    t.match(stdout, /OK \(\d+ backends?, 0 warnings\)/);
  }

  // The ConfigMaps embed the examples verbatim (so the examples are what the manifests run).
  const example = (name: string) => JSON.parse(readFileSync(join(DEPLOY, 'examples', name), 'utf8'));
  t.same(JSON.parse(find(rendered.single, 'ConfigMap', 'gatehouse-config').data['servers.json']), example('kubernetes-single.json'), 'single ConfigMap = examples/kubernetes-single.json');
  t.same(JSON.parse(find(rendered.ha, 'ConfigMap', 'gatehouse-config').data['servers.json']), example('kubernetes-ha.json'), 'ha ConfigMap = examples/kubernetes-ha.json');

  // And a check that the check checks: a broken copy fails.
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, JSON.stringify({ ...example('kubernetes-single.json'), stateStore: { type: 'redis' } }));
  const result = await configCheck(broken);
  t.equal(result.code, 1, 'a redis store without url is refused');
});

t.test('oauth2-proxy: exactly the skip routes, authorize behind the login, identity headers on, Authorization untouched', async (t) => {
  const text = readFileSync(join(DEPLOY, 'oauth2-proxy', 'oauth2-proxy.cfg'), 'utf8');
  const cfg = parseOauth2ProxyCfg(text);
  t.equal(find(rendered['oauth2-proxy'], 'ConfigMap', 'oauth2-proxy-config').data['oauth2-proxy.cfg'], text, 'the ConfigMap embeds oauth2-proxy.cfg verbatim');

  const routes = cfg.skip_auth_routes as string[];
  t.same(routes, ['^/mcp/?$', '^/sse$', '^/messages$', '^/oauth/token$', '^/oauth/register$', '^/oauth/revoke$', '^/\\.well-known/'], 'the exact skip_auth_routes');
  const regexes = routes.map((r) => {
    t.notOk(/^[A-Z]+=/.test(r), `${r}: every method`);
    t.ok(r.startsWith('^'), `${r}: anchored`);
    return new RegExp(r);
  });
  const skipped = (path: string) => regexes.some((r) => r.test(path));
  for (const path of ['/mcp', '/mcp/', '/sse', '/messages', '/oauth/token', '/oauth/register', '/oauth/revoke', '/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-authorization-server']) {
    t.ok(skipped(path), `${path} passes without the login`);
  }
  for (const path of ['/oauth/authorize', '/oauth/authorizex', '/admin/api/clients', '/metrics', '/', '/mcpx', '/x/mcp', '/oauth/token/x', '/.well-knownx/', '/oauth2/sign_in']) {
    t.notOk(skipped(path), `${path} is behind the login`);
  }

  t.equal(cfg.pass_user_headers, true, 'X-Forwarded-User / X-Forwarded-Groups to the gateway');
  t.equal(cfg.set_xauthrequest, true, 'X-Auth-Request-* for auth_request setups');
  t.equal(cfg.oidc_groups_claim, 'groups', 'the groups header is filled from the groups claim');
  t.equal(cfg.skip_auth_strip_headers, true, 'client-sent identity headers are stripped');
  for (const key of ['pass_authorization_header', 'pass_access_token', 'pass_basic_auth', 'set_authorization_header', 'skip_jwt_bearer_tokens']) {
    t.equal(cfg[key], false, `${key} = false: the MCP client's Authorization header reaches the gateway`);
  }
  t.same(cfg.upstreams, ['http://gatehouse:8080/'], 'upstream = the gateway Service');
  const service = find(rendered.base, 'Service', 'gatehouse');
  const upstream = new URL((cfg.upstreams as string[])[0]!);
  t.equal(upstream.hostname, service.metadata.name);
  t.equal(Number(upstream.port), service.spec.ports[0].port);

  const proxy = find(rendered['oauth2-proxy'], 'Deployment', 'oauth2-proxy');
  const c = container(proxy);
  t.same(c.args, ['--config=/etc/oauth2-proxy/oauth2-proxy.cfg']);
  t.equal(c.volumeMounts[0].mountPath, '/etc/oauth2-proxy');
  const [, tag] = /:v(\d+\.\d+)\.\d+$/.exec(c.image) ?? [];
  t.ok(tag && Number(tag.split('.')[0]) === 7 && Number(tag.split('.')[1]) >= 11, `${c.image}: >= v7.11.0 (skip_auth_routes match the path only)`);
  const ingress = find(rendered['oauth2-proxy'], 'Ingress', 'gatehouse');
  const backends = ingress.spec.rules.flatMap((r: Obj) => r.http.paths.map((p: Obj) => p.backend.service.name));
  t.same([...new Set(backends)], ['oauth2-proxy'], 'the ingress sends every path through oauth2-proxy');
});

t.test('Pomerium example: the same public routes, authorize behind the policy', async (t) => {
  const [config] = parseYamlFile(join(DEPLOY, 'pomerium', 'config.yaml'));
  const routes: Obj[] = config!.routes;
  const route = (path: string) => routes.find((r) => (r.path !== undefined && r.path === path) || (r.prefix !== undefined && path.startsWith(r.prefix)) || (r.regex !== undefined && new RegExp(r.regex).test(path)));
  for (const path of ['/mcp', '/sse', '/messages', '/oauth/token', '/oauth/register', '/oauth/revoke', '/.well-known/oauth-authorization-server']) {
    t.equal(route(path)?.allow_public_unauthenticated_access, true, `${path} is public`);
  }
  const authorize = route('/oauth/authorize');
  t.ok(authorize && !authorize.allow_public_unauthenticated_access && authorize.policy, '/oauth/authorize requires the sign-in');
  t.equal(authorize?.pass_identity_headers, true);
  t.same(config!.jwt_claims_headers, { 'X-Forwarded-User': 'email', 'X-Forwarded-Groups': 'groups' });
  t.equal(route('/metrics'), undefined, '/metrics is not routed');
});

t.test('docker-compose: proxy + gateway + redis, the gateway reachable only through the proxy', async (t) => {
  const [compose] = parseYamlFile(join(DEPLOY, 'compose', 'docker-compose.yml'));
  const services = compose!.services;
  t.same(Object.keys(services).sort(), ['gatehouse', 'oauth2-proxy', 'redis']);
  t.notOk(services.gatehouse.ports, 'the gateway publishes no port');
  t.equal(services.gatehouse.read_only, true);
  t.equal(services.gatehouse.build.dockerfile, 'deploy/Dockerfile');
  t.ok(services['oauth2-proxy'].volumes.includes('../oauth2-proxy/oauth2-proxy.cfg:/etc/oauth2-proxy/oauth2-proxy.cfg:ro'), 'the same oauth2-proxy.cfg as Kubernetes');
  const servers = JSON.parse(readFileSync(join(DEPLOY, 'compose', 'servers.json'), 'utf8'));
  const proxyAddress = ipaddr.parse(services['oauth2-proxy'].networks.gatehouse.ipv4_address);
  const cidrs: string[] = servers.serverAuth.oauthAs.trustedSourceCidrs;
  t.ok(cidrs.some((c) => proxyAddress.match(ipaddr.parseCIDR(c))), 'trustedSourceCidrs holds the proxy address');
  for (const name of ['gatehouse', 'redis']) {
    const address = ipaddr.parse(services[name].networks.gatehouse.ipv4_address);
    t.notOk(cidrs.some((c) => address.match(ipaddr.parseCIDR(c))), `${name} is not trusted`);
  }
  t.match(services.redis.command.join(' '), /--appendonly yes/);
  t.equal(services.gatehouse.environment.REDIS_URL, 'redis://redis:6379/0');
  t.same(servers.stateStore, { type: 'redis', url: '${REDIS_URL}', keyPrefix: 'gatehouse:' });
});

t.test('Dockerfile: multi-stage, production dependencies only, non-root, healthcheck (text checks: the image is not built here)', async (t) => {
  const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  const instructions = text.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  const from = instructions.filter((l) => /^FROM /.test(l));
  t.equal(from.length, 2, 'two stages');
  t.match(text, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
  t.match(text, /RUN npm run build/, 'the build stage compiles');
  t.match(text, /npm ci --omit=dev --ignore-scripts/, 'production dependencies only, without `prepare` (no tsc there)');
  t.match(text, /COPY --from=build \/app\/dist \.\/dist/);
  t.match(text, /^WORKDIR \/app$/m);
  const user = instructions.filter((l) => /^USER /.test(l)).pop();
  t.equal(user, 'USER 10001:10001', 'the last USER is uid 10001');
  t.ok(instructions.indexOf(user!) > instructions.findIndex((l) => l.startsWith('FROM ${NODE_IMAGE} AS runtime')), 'USER is in the runtime stage');
  t.match(text, /HEALTHCHECK [^\n]*\\\n\s+CMD \["node","bin\/mcp.js","healthcheck","http:\/\/127.0.0.1:8080\/healthz"\]/);
  t.match(text, /^ENTRYPOINT \["node","bin\/mcp.js"\]$/m);
  t.match(text, /^CMD \["serve","--config","\/etc\/gatehouse\/servers.json","--http","0.0.0.0:8080","--insecure"\]$/m);
  t.match(text, /MCP_AUTH_SERVER_PATH=\/var\/lib\/gatehouse\/auth_server.json/);
  const d = find(rendered.base, 'Deployment', 'gatehouse');
  t.equal(d.spec.template.spec.securityContext.runAsUser, 10001, 'the Deployment runs the image user');
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
  for (const entry of ['**/node_modules', 'dist', 'test', '.git']) t.ok(ignore.includes(entry), `.dockerignore: ${entry}`);
});

// kubectl is not a CI dependency: the renderer above is the check, and this extra comparison (a
// guard against drift) exists only where kubectl is installed, rather than as a skipped test.
const kubectl = findBinary(['kubectl']);
if (!kubectl) t.comment('kubectl is not installed: the in-test kustomize subset renders the overlays alone');
else t.test('kubectl kustomize renders the same objects', async (t) => {
  for (const [name, dir] of Object.entries(KUSTOMIZATIONS)) {
    const output = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done, fail) => {
      const child = spawn(kubectl, ['kustomize', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', fail);
      child.on('close', (code) => done({ code, stdout, stderr }));
    });
    if (output.code !== 0 && /unknown command|kustomize.*not/i.test(output.stderr)) {
      t.comment(`${kubectl} has no kustomize: ${output.stderr.trim()}`);
      continue;
    }
    t.equal(output.code, 0, `${name}: kubectl kustomize ${output.stderr.trim()}`);
    const theirs = new Map(parseYamlText(output.stdout, `kubectl kustomize ${name}`).map((o) => [idOf(o), o]));
    const ours = new Map(rendered[name as keyof typeof KUSTOMIZATIONS].map((o) => [idOf(o), o]));
    t.same([...theirs.keys()].sort(), [...ours.keys()].sort(), `${name}: the same objects`);
    for (const [id, o] of ours) t.same(theirs.get(id), o, `${name}: ${id} identical`);
  }
});

