import t from 'tap';
import { exposeName, splitExposed, longestFirst, SEPARATOR, uriPrefix, exposeUri, splitExposedUri } from '../../src/mcp/names.js';
import { Catalogue } from '../../src/mcp/catalogue.js';
import type { Backend } from '../../src/backends/backend.js';

t.test('exposeName and splitExposed', async (t) => {
  t.equal(SEPARATOR, '__');
  t.equal(exposeName('github', 'create_issue'), 'github__create_issue');
  t.equal(exposeName('fs', 'file:///tmp/a b'), 'fs__file:///tmp/a b');
  const prefixes = longestFirst(['a', 'a_', 'fs', 'github']);
  t.same(prefixes.slice(0, 2), ['github', 'a_'], 'longest first');
  const cases: Array<[string, { prefix: string; local: string } | undefined]> = [
    ['github__create_issue', { prefix: 'github', local: 'create_issue' }],
    ['github__a__b', { prefix: 'github', local: 'a__b' }],
    ['a___x', { prefix: 'a_', local: 'x' }],
    ['a__x', { prefix: 'a', local: 'x' }],
    ['fs__file:///etc/hosts', { prefix: 'fs', local: 'file:///etc/hosts' }],
    ['fs__', undefined],
    ['unknown__x', undefined],
    ['github_x', undefined],
    ['', undefined],
  ];
  for (const [exposed, expected] of cases) t.same(splitExposed(exposed, prefixes), expected, exposed || '(empty)');
});

function fakeBackend(name: string, prefix: string, tools: string[], filter: { allow?: string[]; deny?: string[] } = {}): Backend {
  return {
    name,
    state: 'ready',
    config: { name, prefix, tools: filter },
    lists: {
      tools: tools.map((tool) => ({ name: tool, description: `does ${tool}`, inputSchema: { type: 'object' } })),
      resources: [{ uri: 'mem://one', name: 'one' }],
      resourceTemplates: [{ uriTemplate: 'mem://items/{id}', name: 'item' }],
      prompts: [{ name: 'p' }],
    },
  } as unknown as Backend;
}

t.test('uriPrefix keeps exposed resource URIs valid RFC 3986 URIs', async (t) => {
  t.equal(uriPrefix('everything'), 'everything');
  t.equal(uriPrefix('My_DB'), 'my-db');
  t.equal(uriPrefix('1password'), 'r-1password');
  t.equal(exposeUri('my_db', 'postgres://host/table'), 'my-db+postgres://host/table');
  for (const prefix of ['everything', 'My_DB', '1password', 'a-b', 'x_']) {
    t.ok(URL.canParse(exposeUri(prefix, 'demo://resource/x')), `${prefix}: valid URI`);
    t.same(splitExposedUri(exposeUri(prefix, 'demo://r'), [uriPrefix(prefix)]), { uriPrefix: uriPrefix(prefix), local: 'demo://r' });
  }
});

t.test('Catalogue: prefixes, tags, filters, budget and duplicates', async (t) => {
  const catalogue = new Catalogue(20);
  const a = fakeBackend('alpha', 'a', ['read', 'write', 'debug_dump', 'read', 'a_tool_name_that_is_long'], { deny: ['debug_*'] });
  const b = fakeBackend('beta', 'b', ['read', 'write'], { allow: ['read'] });
  const backends = [a, b];
  catalogue.setBackends(backends);
  const changed = catalogue.rebuild(backends);
  t.same(changed, { tools: true, prompts: true, resources: true });
  t.same([...catalogue.tools.keys()], ['a__read', 'a__write', 'b__read']);
  t.equal(catalogue.tools.get('a__read')!.local, 'read');
  t.equal(catalogue.tools.get('a__read')!.item.description, '[alpha] does read');
  t.equal(catalogue.tools.get('b__read')!.backend, b);
  t.same([...catalogue.resources.keys()], ['a+mem://one', 'b+mem://one']);
  t.equal(catalogue.resources.get('a+mem://one')!.alias, 'a__mem://one');
  t.same([...catalogue.resourceTemplates.keys()], ['a+mem://items/{id}', 'b+mem://items/{id}']);
  t.same([...catalogue.prompts.keys()], ['a__p', 'b__p']);
  t.same(catalogue.problems.map((p) => [p.kind, p.name]), [['collision', 'a__read'], ['too-long', 'a__a_tool_name_that_is_long']]);
  t.same(catalogue.resolveUri('b+mem://items/7'), { backend: b, local: 'mem://items/7', exposed: 'b+mem://items/7', alias: 'b__mem://items/7' });
  t.same(catalogue.resolveUri('b__mem://items/7'), { backend: b, local: 'mem://items/7', exposed: 'b+mem://items/7', alias: 'b__mem://items/7' }, 'alias accepted');
  t.equal(catalogue.resolveUri('c__mem://x'), undefined);
  t.equal(catalogue.resolveUri('c+mem://x'), undefined);

  const version = catalogue.version;
  t.same(catalogue.rebuild(backends), { tools: false, prompts: false, resources: false }, 'no change, no notification');
  t.equal(catalogue.version, version + 1);
  a.lists = { ...a.lists, tools: [...a.lists.tools, { name: 'new', inputSchema: { type: 'object' } }] };
  t.same(catalogue.rebuild(backends), { tools: true, prompts: false, resources: false }, 'a new tool changes only tools');
});
