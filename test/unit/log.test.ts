import t from 'tap';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { RepeatedFields, SelfSerializingFields, batchedLines, createLogger, jsonString, scrubLogObject } from '../../src/log.js';
import { RequestLine } from '../../src/http/server.js';
import { freezeIdentity } from '../../src/auth/types.js';

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({ write(chunk, _enc, done) { chunks.push(String(chunk)); done(); } });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

t.test('sensitive keys are redacted at the top level and nested, other fields are kept', async (t) => {
  const { stream, lines } = capture();
  const logger = createLogger({ destination: stream });
  logger.info({ subject: 'alice', token: 'tok-1', headers: { authorization: 'Bearer x', accept: 'a' }, req: { headers: { authorization: 'Bearer y' } }, arguments: { q: 1 } }, 'hello');
  const [line] = lines();
  t.equal(line!.subject, 'alice');
  t.equal(line!.token, '[redacted]');
  t.same(line!.headers, { authorization: '[redacted]', accept: 'a' });
  t.same(line!.req, { headers: { authorization: '[redacted]' } });
  t.equal(line!.arguments, '[redacted]');
  t.equal(line!.msg, 'hello');
  t.match(line!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO time');
  t.notOk(JSON.stringify(line).includes('tok-1') || JSON.stringify(line).includes('Bearer'), 'no secret value anywhere');
});

t.test('child bindings and the caller object are left intact', async (t) => {
  const { stream, lines } = capture();
  const child = createLogger({ destination: stream }).child({ audit: true });
  const fields = { event: 'auth', refresh_token: 'r-1' };
  child.info(fields, 'x');
  t.equal(fields.refresh_token, 'r-1', 'the caller object is not mutated');
  t.match(lines()[0], { audit: true, event: 'auth', refresh_token: '[redacted]' });
});

t.test('an object without sensitive keys is returned as is (no copy on the hot path)', async (t) => {
  const plain = { method: 'POST', path: '/mcp', status: 200, nested: { backend: 'b' } };
  t.equal(scrubLogObject(plain), plain);
  const deep = { a: { b: { c: { token: 'x' } } } };
  t.equal(scrubLogObject(deep), deep, 'only three levels are inspected');
  t.same(scrubLogObject({ a: { b: { token: 'x' } } }), { a: { b: { token: '[redacted]' } } });
});

t.test('lines written by the plain-line path are the lines pino itself writes', async (t) => {
  // The same options without the logMethod hook: pino's generic writer.
  const ours: string[] = [];
  const reference: string[] = [];
  const logger = createLogger({ destination: { write: (line: string) => ours.push(line) } as never }).child({ audit: true });
  const plain = pino({ base: undefined, timestamp: () => ',"time":"T"', formatters: { level: (label: string) => ({ level: label }), log: (o: Record<string, unknown>) => scrubLogObject(o) } }, { write: (line: string) => reference.push(line) } as never).child({ audit: true });
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const frozenFields = Object.freeze({ event: 'auth', decision: 'allow', roles: Object.freeze(['a']), password: 'secret' });
  const calls: Array<[Record<string, unknown>, string]> = [
    [{ event: 'acl', roles: ['a', 'b"c'], n: 1.5, nan: NaN, none: undefined, s: 'é\u2028\n\t', nested: { authorization: 'y', ok: [1, null] } }, 'acl "allowed"'],
    [{}, 'empty'],
    [{ msg: 'inner', token: 'secret' }, 'outer'],
    [{ method: 'POST', path: '/mcp', status: 200, durationMs: 0.123456789, subject: 'alice', clientId: undefined }, 'request'],
    [{ err: new Error('boom') }, 'an error object goes through pino'],
    [{ big: 10n }, 'a BigInt goes through pino'],
    [{ circular }, 'a cycle goes through pino'],
    [{ fn: () => 1, sym: Symbol('s') }, 'values JSON has no place for'],
    [frozenFields, 'frozen fields, first time'],
    [frozenFields, 'frozen fields, again (serialized once)'],
    [{ ...frozenFields, extra: 1 }, 'a copy of them'],
  ];
  for (const [fields, message] of calls) {
    logger.info(fields, message);
    plain.info(fields, message);
  }
  // A repeated part (frozen or not) and the fields that change: the line of the two merged.
  const repeatedFrozen = Object.freeze({ event: 'tool_call', subject: 'alice', clientId: undefined, tool: 'echo', token: 'secret' });
  const repeatedPlain = { event: 'tool_call', subject: 'bob', rule: 'rules[0]' };
  const repeated: Array<[RepeatedFields, string]> = [
    [new RepeatedFields(repeatedFrozen, { outcome: 'ok', durationMs: 3 }), 'repeated fields, first time'],
    [new RepeatedFields(repeatedFrozen, { outcome: 'error', durationMs: 40, code_verifier: 'secret' }), 'repeated fields, again'],
    [new RepeatedFields(repeatedPlain, { outcome: 'ok', durationMs: 1 }), 'a repeated part that is not frozen'],
    [new RepeatedFields(repeatedFrozen, { err: new Error('boom') }), 'changing fields that go through pino'],
  ];
  // Fields that write their own members: the request line, and a changing part of a repeated line.
  class Ended extends SelfSerializingFields {
    constructor(readonly outcome: string, readonly durationMs: number) {
      super();
    }
    jsonMembers(): string {
      return `,"outcome":${jsonString(this.outcome)},"durationMs":${this.durationMs}`;
    }
    toJSON(): Record<string, unknown> {
      return { outcome: this.outcome, durationMs: this.durationMs };
    }
  }
  repeated.push(
    [new RepeatedFields(repeatedFrozen, new Ended('ok', 0.25)), 'a changing part that writes its own members'],
    [new RepeatedFields(repeatedPlain, new Ended('a "quoted" \\ outcome', 12)), 'the same, with characters to escape'],
  );
  for (const [fields, message] of repeated) {
    logger.info(fields, message);
    plain.info(fields.toJSON(), message);
  }
  const requestLines = [
    new RequestLine('POST', '/mcp', 200, 1.234, { subject: 'alice', clientId: 'c-1', backend: 'fx', tool: 'echo' }),
    new RequestLine('GET', '/oauth/authorize', 302, 0.05, {}),
    new RequestLine('POST', '/a"b\\c\u0001', 401, 12, { clientId: 'only-client' }),
    new RequestLine('DELETE', '/mcp', 200, 1e-3, { subject: 'é \u2028 😀', tool: 'x', backend: undefined }),
  ];
  // pino writes a lone surrogate as it is; the plain-line path, as JSON.stringify does (escaped).
  for (const fields of [...requestLines, new RequestLine('GET', '/\ud800', 200, 1, { subject: 'x\udc00' })]) {
    t.equal(fields.jsonMembers(), `,${JSON.stringify(fields.toJSON()).slice(1, -1)}`, `${fields.method} ${fields.status}: the members JSON.stringify writes`);
  }
  for (const fields of requestLines) {
    logger.info(fields, 'request');
    plain.info(fields.toJSON(), 'request');
  }
  const selfWritten = repeated.length - 4 + requestLines.length;
  logger.warn({ a: 1 }, 'with %s', 'an argument');
  plain.warn({ a: 1 }, 'with %s', 'an argument');
  const strip = (line: string) => line.replace(/,"time":"[^"]*"/, '');
  t.equal(ours.length, reference.length);
  for (let i = 0; i < ours.length; i++) {
    t.same(JSON.parse(strip(ours[i]!)), JSON.parse(strip(reference[i]!)), `line ${i + 1} parses to the same value`);
    t.ok(ours[i]!.endsWith('}\n'), 'one line, newline-terminated');
  }
  t.notOk(ours.join('').includes('secret'), 'redaction applies on the plain-line path');
  for (let i = ours.length - 1 - repeated.length - requestLines.length; i < ours.length - 1; i++) {
    t.equal(strip(ours[i]!), strip(reference[i]!), `line ${i + 1}: repeated and self-written fields written as pino writes the merged fields, member order included`);
  }
  t.equal(selfWritten, 6);
  t.match(ours[0], /^\{"level":"info","time":"[^"]+","audit":true,"event":"acl",/, 'level, time, bindings, then the fields');
});

t.test('jsonString quotes a string as JSON.stringify does', async (t) => {
  const strings = ['', 'plain', 'a"b', 'back\\slash', 'tab\tnewline\n', '\u0000\u001f\u007f', 'é ü ß', '\u2028\u2029', '😀', '\ud800', 'x\udc00y', '\ud83d\ude00\ud83d', '/mcp?x=1&y=</script>'];
  strings.forEach((value, i) => t.equal(jsonString(value), JSON.stringify(value), `string ${i}`));
});

t.test('batchedLines hands lines over in batches, on size, after a delay, on demand and at exit', async (t) => {
  const written: string[] = [];
  const stream = { write: (text: string) => written.push(text), flushSync: () => written.push('<sync>') };
  const batch = batchedLines(stream as never, 20);
  batch.write('a\n');
  batch.write('b\n');
  t.same(written, [], 'held while the batch is small');
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.same(written, ['a\nb\n'], 'one write after the delay, lines in order');
  batch.write('x'.repeat(9000) + '\n');
  t.equal(written.length, 2, 'a batch of 8 KB or more leaves at once');
  batch.write('c\n');
  batch.flush();
  t.equal(written[2], 'c\n', 'flush() hands over what is gathered');
  const perTurn: string[] = [];
  const turnBatch = batchedLines({ write: (text: string) => perTurn.push(text), flushSync() {} } as never, 0);
  turnBatch.write('1\n');
  turnBatch.write('2\n');
  await new Promise((resolve) => setImmediate(resolve));
  t.same(perTurn, ['1\n2\n'], 'delay 0: one write at the end of the turn');
});

t.test('lines still gathered when the process exits are written', async (t) => {
  const { execFile } = await import('node:child_process');
  const script = `import { createLogger } from ${JSON.stringify(new URL('../../src/log.ts', import.meta.url).href)};
const logger = createLogger();
for (let i = 0; i < 5; i++) logger.info({ i }, 'line');
process.exit(0);`;
  const stderr = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], (error, _stdout, err) => (error ? reject(error) : resolve(err)));
  });
  const lines = stderr.split('\n').filter((line) => line.startsWith('{'));
  t.equal(lines.length, 5, 'all five lines reach stderr');
  t.same(lines.map((line) => JSON.parse(line).i), [0, 1, 2, 3, 4]);
});

t.test('audit event fields of a frozen identity are one frozen object', async (t) => {
  const { authAllowedEvent } = await import('../../src/observability/audit.js');
  const frozen = freezeIdentity({ subject: 'alice', roles: ['dev'], clientId: 'c-1', via: 'oauth_as' });
  const event = authAllowedEvent(frozen);
  t.same(event, { event: 'auth', decision: 'allow', provider: 'oauth_as', subject: 'alice', clientId: 'c-1' });
  t.ok(Object.isFrozen(event));
  t.equal(authAllowedEvent(frozen), event, 'the same object on every request of that identity');
  const mutable = { subject: 'bob', roles: [], via: 'forwarded' };
  t.not(authAllowedEvent(mutable), authAllowedEvent(mutable), 'a fresh object for an identity that may change');
  t.notOk(Object.isFrozen(authAllowedEvent(mutable)));
});
