import t, { type Test } from 'tap';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { aclExplainCommand, type AclExplainOptions, type Catalogue } from '../../src/cli/acl-explain.js';
import { ConfigError, UserError } from '../../src/errors.js';

const fixture = {
  mcpServers: {
    everything: { command: 'npx', args: ['@modelcontextprotocol/server-everything'], tools: { deny: ['*_debug'] } },
    sentry: { url: 'https://mcp.sentry.dev/mcp', prefix: 'errors', tools: { allow: ['search_*'] } },
    off: { url: 'http://127.0.0.1:9/mcp', enabled: false },
  },
  serverAuth: { providers: ['bearer'], bearer: { tokens: { '${CI_TOKEN}': { subject: 'ci', roles: ['admin'] } } } },
  acl: {
    default: 'deny',
    rules: [
      { roles: ['admin'], tools: ['*'], resources: ['*'], prompts: ['*'], policy: 'allow' },
      { roles: ['dev'], tools: ['everything__echo', 'errors__*'], policy: 'allow' },
      { subjects: ['*@example.com'], resources: ['everything__demo://resource/static/document/*'], policy: 'allow' },
    ],
  },
};

async function setup(t: Test, doc: unknown = fixture): Promise<string> {
  const dir = t.testdir({});
  const file = path.join(dir, 'servers.json');
  await writeFile(file, JSON.stringify(doc));
  return file;
}

async function run(options: Omit<AclExplainOptions, 'out' | 'err' | 'env'> & { env?: NodeJS.ProcessEnv }) {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await aclExplainCommand({ env: { CI_TOKEN: 'x'.repeat(32) }, ...options, out, err });
  return { code, stdout, stderr };
}

t.test('single-item decisions', async (t) => {
  const config = await setup(t);
  const table: [string, Partial<AclExplainOptions>, string][] = [
    ['admin tool', { subject: 'ci', roles: ['admin'], tool: 'everything__echo' }, 'allow  tool everything__echo  (rules[0])\n'],
    ['backend deny-list beats the admin rule', { subject: 'ci', roles: ['admin'], tool: 'everything__trace_debug' }, 'deny  tool everything__trace_debug  (backend deny-list)\n'],
    ['backend allow-list (custom prefix)', { subject: 'ci', roles: ['admin'], tool: 'errors__delete_project' }, 'deny  tool errors__delete_project  (backend allow-list)\n'],
    ['allowed by the backend, then the ACL', { subject: 'bob', roles: ['dev'], tool: 'errors__search_issues' }, 'allow  tool errors__search_issues  (rules[1])\n'],
    ['no rule → default', { subject: 'bob', roles: ['dev'], tool: 'everything__add' }, 'deny  tool everything__add  (default)\n'],
    ['resource URI glob across /', { subject: 'a@example.com', roles: [], resource: 'everything__demo://resource/static/document/x/1' }, 'allow  resource everything__demo://resource/static/document/x/1  (rules[2])\n'],
    ['prompt', { subject: 'bob', roles: ['dev'], prompt: 'everything__simple_prompt' }, 'deny  prompt everything__simple_prompt  (default)\n'],
    ['backend filters apply to tools only', { subject: 'ci', roles: ['admin'], prompt: 'everything__x_debug' }, 'allow  prompt everything__x_debug  (rules[0])\n'],
    ['comma-joined roles', { subject: 'bob', roles: ['qa,dev'], tool: 'everything__echo' }, 'allow  tool everything__echo  (rules[1])\n'],
    ['several items at once', { subject: 'bob', roles: ['dev'], tool: 'everything__echo', prompt: 'p' },
      'allow  tool everything__echo  (rules[1])\ndeny  prompt p  (default)\n'],
  ];
  for (const [name, options, expected] of table) {
    const result = await run({ config, subject: '', roles: [], ...options });
    t.equal(result.code, 0, `${name}: exit 0`);
    t.equal(result.stdout, expected, name);
  }
});

t.test('unknown prefix gets a note, and the ACL decision', async (t) => {
  const config = await setup(t);
  const result = await run({ config, subject: 'ci', roles: ['admin'], tool: 'off__thing' });
  t.equal(result.code, 0);
  t.equal(result.stdout, 'allow  tool off__thing  (rules[0])\n');
  t.match(result.stderr, /no enabled backend exposes "off__thing"/);
});

t.test('--json', async (t) => {
  const config = await setup(t);
  const result = await run({ config, subject: 'ci', roles: ['admin'], tool: 'everything__trace_debug', json: true });
  t.equal(result.code, 0);
  t.same(JSON.parse(result.stdout), {
    subject: 'ci',
    roles: ['admin'],
    decisions: [{ kind: 'tool', name: 'everything__trace_debug', backend: 'everything', allow: false, rule: 'backend deny-list' }],
  });
});

t.test('no acl block → allow (no acl)', async (t) => {
  const config = await setup(t, { ...fixture, acl: undefined });
  const result = await run({ config, subject: 'anyone', roles: [], tool: 'everything__echo' });
  t.equal(result.stdout, 'allow  tool everything__echo  (no acl)\n');
});

t.test('usage errors exit 1', async (t) => {
  const config = await setup(t);
  const none = await run({ config, subject: 'ci', roles: [] });
  t.equal(none.code, 1);
  t.match(none.stderr, /--tool NAME, --resource URI, --prompt NAME or --all/);
  t.equal(none.stdout, '');
  const empty = await run({ config, subject: '', roles: [], tool: 'x' });
  t.equal(empty.code, 1);
});

t.test('config problems are thrown for the CLI entry to print', async (t) => {
  const missing = path.join(t.testdir({}), 'nope.json');
  await t.rejects(run({ config: missing, subject: 'ci', roles: [], tool: 'x' }), UserError);
  const badGlob = await setup(t, { ...fixture, acl: { default: 'deny', rules: [{ tools: ['x__['], policy: 'allow' }] } });
  await t.rejects(run({ config: badGlob, subject: 'ci', roles: [], tool: 'x' }), ConfigError);
});

const fakeCatalogue: Catalogue = {
  tools: [
    { name: 'everything__echo', backend: 'everything', localName: 'echo' },
    { name: 'everything__trace_debug', backend: 'everything', localName: 'trace_debug' },
    { name: 'errors__search_issues', backend: 'sentry', localName: 'search_issues' },
    { name: 'errors__delete_project', backend: 'sentry', localName: 'delete_project' },
  ],
  resources: [{ uri: 'everything__demo://resource/static/document/1', backend: 'everything' }],
  resourceTemplates: [{ uriTemplate: 'everything__demo://resource/dynamic/{id}', backend: 'everything' }],
  prompts: [{ name: 'everything__simple_prompt', backend: 'everything' }],
  errors: [],
};

t.test('--all lists what the identity would see (injected catalogue)', async (t) => {
  const config = await setup(t);
  const dev = await run({ config, subject: 'bob@example.com', roles: ['dev'], all: true, listCatalogue: async () => fakeCatalogue });
  t.equal(dev.code, 0);
  t.equal(dev.stdout, [
    'allow  tool everything__echo  (rules[1])',
    'allow  tool errors__search_issues  (rules[1])',
    'allow  resource everything__demo://resource/static/document/1  (rules[2])',
    '# bob@example.com [dev] sees 3 of 7 items (4 hidden)',
    '',
  ].join('\n'));

  const admin = await run({ config, subject: 'ci', roles: ['admin'], all: true, json: true, listCatalogue: async () => fakeCatalogue });
  const doc = JSON.parse(admin.stdout) as { items: { name: string; allow: boolean; rule: string; kind: string }[] };
  t.same(doc.items.filter((i) => !i.allow).map((i) => [i.name, i.rule]), [
    ['everything__trace_debug', 'backend deny-list'],
    ['errors__delete_project', 'backend allow-list'],
  ]);
  t.equal(doc.items.find((i) => i.kind === 'template')?.rule, 'rules[0]');

  const partial = await run({
    config, subject: 'ci', roles: ['admin'], all: true,
    listCatalogue: async () => ({ ...fakeCatalogue, errors: [{ backend: 'sentry', message: 'connect ECONNREFUSED' }] }),
  });
  t.equal(partial.code, 1, 'an incomplete catalogue exits 1');
  t.match(partial.stderr, /backend "sentry" could not be listed: connect ECONNREFUSED/);
  t.match(partial.stdout, /sees 5 of 7 items/);
});

t.test('--all with the real probe and no backends', async (t) => {
  const config = await setup(t, { ...fixture, mcpServers: {} });
  const result = await run({ config, subject: 'ci', roles: ['admin'], all: true });
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /sees 0 of 0 items/);
});

t.test('--all against a real backend (server-everything over stdio)', async (t) => {
  const server = path.resolve(import.meta.dirname, '../../node_modules/@modelcontextprotocol/server-everything/dist/index.js');
  const config = await setup(t, {
    mcpServers: { everything: { command: process.execPath, args: [server, 'stdio'], tools: { deny: ['get-env'] } } },
    acl: {
      default: 'deny',
      rules: [
        { roles: ['dev'], tools: ['everything__echo', 'everything__get*'], resources: ['everything__demo://resource/static/document/*'], policy: 'allow' },
      ],
    },
  });
  const result = await run({ config, subject: 'bob', roles: ['dev'], all: true, json: true });
  t.equal(result.code, 0, result.stderr);
  const doc = JSON.parse(result.stdout) as { items: { kind: string; name: string; allow: boolean; rule: string }[]; errors: unknown[] };
  t.same(doc.errors, []);
  t.ok(doc.items.some((i) => i.name === 'everything__echo' && i.allow && i.rule === 'rules[0]'), 'echo visible through rules[0]');
  t.ok(doc.items.filter((i) => i.kind === 'prompt').every((i) => !i.allow && i.rule === 'default'), 'prompts hidden by default');
  t.ok(doc.items.some((i) => i.name === 'everything__get-sum' && i.allow), 'get* glob');
  t.notOk(doc.items.some((i) => i.name === 'everything__get-env' && i.allow), 'backend deny-list wins over the ACL allow');
  t.ok(doc.items.some((i) => i.name === 'everything__trigger-long-running-operation' && !i.allow && i.rule === 'default'), 'other tools hidden');
});
