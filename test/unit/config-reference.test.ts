import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

t.test('docs/config-reference.md is generated from the schema and up to date', async (t) => {
  const generated = execFileSync(process.execPath, ['scripts/config-reference.mjs', '--stdout'], { cwd: ROOT, encoding: 'utf8' });
  const committed = readFileSync(new URL('docs/config-reference.md', `file://${ROOT}`), 'utf8');
  t.equal(committed, generated, 'run `npm run docs:config` and commit docs/config-reference.md');
});

t.test('every schema property has a description, and the reference lists it', async (t) => {
  const schema = JSON.parse(readFileSync(new URL('schemas/servers.schema.json', `file://${ROOT}`), 'utf8')) as Record<string, unknown>;
  const missing: string[] = [];
  const visit = (node: unknown, at: string): void => {
    if (!node || typeof node !== 'object') return;
    const n = node as Record<string, unknown>;
    for (const [key, child] of Object.entries((n.properties ?? {}) as Record<string, Record<string, unknown>>)) {
      if (typeof child.description !== 'string' || child.description === '') missing.push(`${at}/${key}`);
      visit(child, `${at}/${key}`);
    }
    if (n.additionalProperties && typeof n.additionalProperties === 'object') visit(n.additionalProperties, `${at}/*`);
    if (n.items) visit(n.items, `${at}/[]`);
    if (n.definitions) for (const [k, d] of Object.entries(n.definitions as Record<string, unknown>)) visit(d, `#${k}`);
  };
  visit(schema, '');
  t.same(missing, []);
  const reference = readFileSync(new URL('docs/config-reference.md', `file://${ROOT}`), 'utf8');
  for (const needle of ['`/serverAuth/oauthAs/redirectUriAllowlist`', '`/mcpServers/<name>/transport`', '`/acl/rules/<i>/policy`', '`/serverAuth/bearer/tokens/<token>/roles`']) {
    t.ok(reference.includes(needle), needle);
  }
});
