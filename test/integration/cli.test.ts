import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, FIXTURE_SERVER, connectClient, waitFor } from '../helpers/gateway.js';
import { runCli, serveCli, type ServedCli } from '../helpers/cli.js';

const TOKEN = 'cli-test-token-000000000000';

const run = runCli;

function serve(t: { teardown(fn: () => unknown): void }, configPath: string, extraArgs: string[] = []): Promise<ServedCli> {
  return serveCli(t, configPath, '127.0.0.1:0', extraArgs);
}

function writeConfig(dir: string, backends: Record<string, unknown>): string {
  const path = join(dir, 'servers.json');
  writeFileSync(path, JSON.stringify({
    mcpServers: backends,
    serverAuth: { providers: ['bearer'], bearer: { tokens: { [TOKEN]: { subject: 'ci', roles: ['admin'] } } } },
  }));
  return path;
}

const fixture = (name: string) => ({ command: process.execPath, args: [FIXTURE_SERVER, 'stdio'], env: { FIXTURE_NAME: name } });

t.test('serve: start, SIGHUP reload (add a backend, break the file, fix it), SIGTERM drain', async (t) => {
  const dir = t.testdir();
  const configPath = writeConfig(dir, { one: fixture('one') });
  const served = await serve(t, configPath);
  t.match(served.url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
  const client = await connectClient(t, served.url, TOKEN);
  await waitFor('one listed', async () => (await client.listTools()).tools.some((x) => x.name === 'one__echo'));

  writeConfig(dir, { one: fixture('one'), two: fixture('two') });
  served.child.kill('SIGHUP');
  await waitFor('two listed after reload', async () => (await client.listTools()).tools.some((x) => x.name === 'two__echo'));
  t.pass('a backend added by SIGHUP is served');

  writeFileSync(configPath, '{ "mcpServers": { "one": { "command": "x", "url": "http://y" } }, "bogus": 1 }');
  served.child.kill('SIGHUP');
  const refused = await waitFor('reload refused', () => served.lines.find((l) => String(l.msg).includes('reload refused')));
  t.match(String(refused.problems), /bogus/, 'the log says why');
  const stillThere = await client.callTool({ name: 'two__echo', arguments: { text: 'kept' } });
  t.match(JSON.stringify(stillThere.content), /kept/, 'the old configuration keeps serving');

  writeConfig(dir, { one: fixture('one') });
  served.child.kill('SIGHUP');
  await waitFor('two gone after fixed reload', async () => !(await client.listTools()).tools.some((x) => x.name === 'two__echo'));
  t.pass('the fixed file is applied');

  const slow = client.callTool({ name: 'one__slow', arguments: { ms: 800 } });
  await new Promise((r) => setTimeout(r, 150));
  served.child.kill('SIGTERM');
  const result = await slow;
  t.match(JSON.stringify(result.content), /slept 800/, 'an in-flight call completes during the drain');
  t.equal(await served.exited, 0, 'exit 0 after draining');
  t.notMatch(served.lines.map((l) => JSON.stringify(l)).join('\n'), new RegExp(TOKEN), 'the token never appears in logs');
});

t.test('healthcheck, secret generate', async (t) => {
  const dir = t.testdir();
  const served = await serve(t, writeConfig(dir, { one: fixture('one') }));
  const base = served.url.replace(/\/mcp$/, '');
  t.equal((await run(['healthcheck', `${base}/healthz`])).code, 0);
  served.child.kill('SIGTERM');
  await served.exited;
  const down = await run(['healthcheck', `${base}/healthz`]);
  t.equal(down.code, 1);
  t.match(down.stderr, /mcp healthcheck:/);
  const secret = await run(['secret', 'generate']);
  t.equal(secret.code, 0);
  t.match(secret.stdout.trim(), /^[A-Za-z0-9_-]{43}$/);
  t.not(secret.stdout, (await run(['secret', 'generate'])).stdout, 'fresh each time');
});

t.test('user errors: one clear message, exit 1, no stack trace', async (t) => {
  const dir = t.testdir();
  const configPath = writeConfig(dir, { one: fixture('one') });
  const cases: Array<[string, string[], RegExp, NodeJS.ProcessEnv?]> = [
    ['non-loopback bind without --insecure', ['serve', '--config', configPath, '--http', '0.0.0.0:0'], /non-loopback address/],
    ['bad --http', ['serve', '--config', configPath, '--http', 'nonsense'], /is not HOST:PORT/],
    ['no config at all', ['serve'], /no configuration/],
    ['missing file', ['serve', '--config', join(dir, 'missing.json')], /missing\.json/],
    ['broken config', ['config', 'check', '--config', join(ROOT, 'test/fixtures/configs/invalid/unknown-key.jsonc')], /error at \//],
  ];
  for (const [name, args, pattern, env] of cases) {
    const result = await run(args, env);
    t.equal(result.code, 1, `${name}: exit 1`);
    t.match(result.stderr + result.stdout, pattern, `${name}: message`);
    t.notMatch(result.stderr, /\n\s+at .+:\d+:\d+/, `${name}: no stack trace`);
  }
  const inline = await run(['config', 'check'], { MCP_SERVERS_CONFIG: JSON.stringify({ mcpServers: { one: fixture('one') } }) });
  t.equal(inline.code, 0, 'inline MCP_SERVERS_CONFIG is accepted');
  const viaEnv = await run(['config', 'check'], { MCP_CONFIG_PATH: configPath });
  t.equal(viaEnv.code, 0, 'MCP_CONFIG_PATH is accepted');
});

t.test('acl explain through the CLI', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'servers.json');
  writeFileSync(path, JSON.stringify({
    mcpServers: { one: fixture('one') },
    acl: { default: 'deny', rules: [{ roles: ['dev'], tools: ['one__*'], policy: 'allow' }] },
  }));
  const allowed = await run(['acl', 'explain', '--config', path, '--subject', 'ada', '--roles', 'dev', '--tool', 'one__echo']);
  t.equal(allowed.code, 0);
  t.match(allowed.stdout, /allow.*one__echo.*rules\[0\]/);
  const denied = await run(['acl', 'explain', '--config', path, '--subject', 'bob', '--tool', 'one__echo']);
  t.match(denied.stdout, /deny.*one__echo.*default/);
  const all = await run(['acl', 'explain', '--config', path, '--subject', 'ada', '--roles', 'dev', '--all']);
  t.equal(all.code, 0);
  t.match(all.stdout, /one__echo/);
  t.match(all.stdout, /one__structured/);
});

t.test('config check --probe reports backends that do not start and names over the budget', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'servers.json');
  writeFileSync(path, JSON.stringify({
    mcpServers: {
      averyveryveryveryverylongprefixnameforabackend: fixture('long'),
      broken: { command: join(dir, 'no-such-binary') },
      fine: fixture('fine'),
    },
  }));
  const result = await run(['config', 'check', '--config', path, '--probe']);
  t.equal(result.code, 1);
  t.match(result.stdout, /error at \/mcpServers\/broken: backend did not start/);
  t.match(result.stdout, /error at \/mcpServers\/averyveryveryveryverylongprefixnameforabackend: "averyveryveryveryverylongprefixnameforabackend__everything_content" is 66 characters, over the 64-character budget/);
  t.notMatch(result.stdout, /mcpServers\/fine/, 'a healthy backend raises nothing');
  t.match(result.stderr, /\[\d\/3\] fine: ready/, 'progress lines go to stderr');
  writeFileSync(path, JSON.stringify({ mcpServers: { fine: fixture('fine') } }));
  const ok = await run(['config', 'check', '--config', path, '--probe']);
  t.equal(ok.code, 0);
});
