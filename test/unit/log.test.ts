import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger, scrubLogObject } from '../../src/log.js';

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
