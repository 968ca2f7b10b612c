import t from 'tap';
import { expandEnv } from '../../src/config/expand.js';
import { parseConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

t.test('${VAR} and ${VAR:-default} in nested strings', async (t) => {
  const doc = {
    a: 'x-${A}-y', b: { c: ['${B:-fallback}', '${EMPTY:-used-when-empty}', 'plain $ and {braces}'] },
    d: '${A}${A}', e: 'literal $${A}', f: '${UNSET:-}',
  };
  const { value, problems } = expandEnv(doc, { A: 'one', EMPTY: '' });
  t.same(problems, []);
  t.same(value, {
    a: 'x-one-y', b: { c: ['fallback', 'used-when-empty', 'plain $ and {braces}'] },
    d: 'oneone', e: 'literal ${A}', f: '',
  });
  t.equal(doc.a, 'x-${A}-y', 'input is not mutated');
});

t.test('non-string values are untouched', async (t) => {
  const doc = { n: 42, b: true, z: null, arr: [1, false, null], o: { n: 1.5 } };
  const { value } = expandEnv(doc, {});
  t.same(value, doc);
});

t.test('keys are expanded only in bearer.tokens, headers and env', async (t) => {
  const doc = {
    mcpServers: { s: { headers: { '${H}': 'v-${V}' }, env: { '${K}': '${V}' }, '${NOT_A_MAP}': 1 } },
    serverAuth: { bearer: { tokens: { '${TOKEN}': { subject: '${SUBJECT:-ci}' } } } },
    '${TOP}': 'x',
  };
  const { value, problems } = expandEnv(doc, { H: 'X-Api-Key', V: 'val', K: 'KEY', TOKEN: 'secret-token-value' });
  t.same(problems, []);
  t.same(value, {
    mcpServers: { s: { headers: { 'X-Api-Key': 'v-val' }, env: { KEY: 'val' }, '${NOT_A_MAP}': 1 } },
    serverAuth: { bearer: { tokens: { 'secret-token-value': { subject: 'ci' } } } },
    '${TOP}': 'x',
  });
});

t.test('an unset variable is an error naming the path and the variable, never a value', async (t) => {
  const doc = {
    mcpServers: { s: { url: 'https://${HOST}/mcp', headers: { Authorization: 'Bearer ${TOKEN}' } } },
    serverAuth: { bearer: { tokens: { 'literal-token-aaaa': { subject: 'a' }, '${CI_TOKEN}': { subject: 'ci' } } } },
    list: ['ok', '${bad name}'],
  };
  const { problems } = expandEnv(doc, { HOST: 'secret-host' });
  t.same(problems, [
    { path: '/mcpServers/s/headers/Authorization', message: 'environment variable TOKEN is not set (use ${TOKEN:-default} for a default)', severity: 'error' },
    { path: '/serverAuth/bearer/tokens/<token #2>', message: 'environment variable CI_TOKEN is not set (use ${CI_TOKEN:-default} for a default)', severity: 'error' },
    { path: '/list/1', message: '"${bad name}" is not a valid variable reference (expected ${NAME} or ${NAME:-default}; write $${ for a literal "${")', severity: 'error' },
  ]);
  t.notOk(JSON.stringify(problems).includes('secret-host'));
  t.notOk(JSON.stringify(problems).includes('literal-token'));
});

t.test('two token keys expanding to the same value are refused', async (t) => {
  const { problems } = expandEnv({ serverAuth: { bearer: { tokens: { '${A}': {}, '${B}': {} } } } }, { A: 'same-token', B: 'same-token' });
  t.same(problems, [{ path: '/serverAuth/bearer/tokens/<token #2>', message: 'after variable expansion this key duplicates an earlier key', severity: 'error' }]);
});

t.test('expansion happens before validation: enums see the expanded value', async (t) => {
  const text = '{"mcpServers": {"r": {"url": "${URL}", "transport": "${TRANSPORT:-sse}", "timeoutSeconds": 5}}}';
  const { config } = parseConfigText(text, 'inline', '/', { URL: 'https://r.example/mcp' });
  t.match(config.backends[0], { url: 'https://r.example/mcp', transport: 'sse', timeoutSeconds: 5 });
  try {
    parseConfigText(text, 'inline', '/', {});
    t.fail('should throw');
  } catch (error) {
    t.ok(error instanceof ConfigError);
    t.same((error as ConfigError).problems.filter((p) => p.severity === 'error').map((p) => p.path), ['/mcpServers/r/url'],
      'one error for the unset variable, no schema noise on top');
  }
});
