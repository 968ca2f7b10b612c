import t from 'tap';
import { Writable } from 'node:stream';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { resolveJwtSecret } from '../../src/oauth/secret.js';
import { UserError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';

function capture() {
  const lines: Array<{ level: string; msg: string; [key: string]: unknown }> = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { lines, logger: createLogger({ destination, level: 'debug' }) };
}

const bytes = (text: string) => new TextEncoder().encode(text);
const isPosix = process.platform !== 'win32';

t.test('configured secret: its UTF-8 bytes are the key', async (t) => {
  const { logger, lines } = capture();
  const dir = t.testdir();
  const configured = 'Xo3k9vQ2mN7pL1sT8wY4zB6cD0eF5gH2jK9lM3nP7qR'; // 43 chars, as from `mcp secret generate`
  t.same(await resolveJwtSecret({ configured, statePath: path.join(dir, 'auth_server.json'), logger }), bytes(configured));
  const multibyte = 'é'.repeat(16); // 16 characters, 32 bytes
  t.same(await resolveJwtSecret({ configured: multibyte, statePath: path.join(dir, 'auth_server.json'), logger }), bytes(multibyte));
  t.same(await fs.readdir(dir), [], 'nothing written when configured');
  t.equal(lines.length, 0, 'nothing logged');
});

t.test('configured secret shorter than 32 bytes is a UserError that does not echo it', async (t) => {
  const { logger } = capture();
  const dir = t.testdir();
  for (const configured of ['', 'short-secret-value', 'a'.repeat(31), 'é'.repeat(15) + 'a']) {
    try {
      await resolveJwtSecret({ configured, statePath: path.join(dir, 'auth_server.json'), logger });
      t.fail(`accepted ${configured.length} chars`);
    } catch (error) {
      t.type(error, UserError);
      const message = (error as Error).message;
      t.match(message, /at least 32 bytes/);
      t.match(message, new RegExp(`is ${bytes(configured).byteLength} bytes`));
      if (configured.length > 0) t.notOk(message.includes(configured), 'secret not echoed');
    }
  }
});

t.test('absent: generated once, 0600, warned about, then reused', async (t) => {
  const { logger, lines } = capture();
  const dir = t.testdir();
  const statePath = path.join(dir, 'state', 'auth_server.json'); // directory does not exist yet
  const file = path.join(dir, 'state', 'jwt.secret');

  const key = await resolveJwtSecret({ statePath, logger });
  const content = await fs.readFile(file, 'utf8');
  t.match(content, /^[A-Za-z0-9_-]{43}\n$/, 'base64url of 32 random bytes');
  t.same(key, bytes(content.trim()), 'the key is the file content, as if configured');
  if (isPosix) t.equal((await fs.stat(file)).mode & 0o777, 0o600, 'mode 0600');
  t.same((await fs.readdir(path.dirname(file))).sort(), ['jwt.secret'], 'no temp file left behind');

  const warnings = lines.filter((line) => line.level === 'warn');
  t.equal(warnings.length, 1);
  t.match(warnings[0]!.msg, file, 'names the path');
  t.match(warnings[0]!.msg, /every replica/i);
  t.match(warnings[0]!.msg, /jwtSecret/);
  t.match(warnings[0]!.msg, /invalidates/);
  t.notOk(JSON.stringify(warnings).includes(content.trim()), 'the secret is not logged');

  lines.length = 0;
  t.same(await resolveJwtSecret({ statePath, logger }), key, 'second boot reuses the file');
  t.equal(lines.length, 0, 'no warning when reusing a 0600 file');
});

t.test('concurrent first boots agree on one secret', async (t) => {
  const { logger } = capture();
  const dir = t.testdir();
  const statePath = path.join(dir, 'auth_server.json');
  const keys = await Promise.all(Array.from({ length: 8 }, () => resolveJwtSecret({ statePath, logger })));
  for (const key of keys) t.same(key, keys[0]);
  t.same((await fs.readdir(dir)).sort(), ['jwt.secret']);
});

t.test('existing file readable by others is used and warned about', { skip: !isPosix && 'POSIX modes only' }, async (t) => {
  const { logger, lines } = capture();
  const dir = t.testdir();
  const file = path.join(dir, 'jwt.secret');
  const value = 'k'.repeat(40);
  await fs.writeFile(file, `${value}\n`, { mode: 0o644 });
  await fs.chmod(file, 0o644);
  t.same(await resolveJwtSecret({ statePath: path.join(dir, 'auth_server.json'), logger }), bytes(value));
  const warning = lines.find((line) => line.level === 'warn');
  t.ok(warning);
  t.match(warning!.msg, /readable by group or others/);
  t.match(warning!.msg, /chmod 600/);
});

t.test('existing file that is too short is a UserError naming the file', async (t) => {
  const { logger } = capture();
  const dir = t.testdir();
  const file = path.join(dir, 'jwt.secret');
  await fs.writeFile(file, 'too-short\n', { mode: 0o600 });
  await t.rejects(resolveJwtSecret({ statePath: path.join(dir, 'auth_server.json'), logger }), UserError);
  await t.rejects(resolveJwtSecret({ statePath: path.join(dir, 'auth_server.json'), logger }), { message: new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) });
  t.equal(await fs.readFile(file, 'utf8'), 'too-short\n', 'never silently replaced');
});
