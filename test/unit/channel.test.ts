import t from 'tap';
import { McpError, ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import { RequestChannel, type WireMessage } from '../../src/backends/channel.js';
import { Cancellation } from '../../src/backends/cancellation.js';

function channel() {
  const sent: WireMessage[] = [];
  const notified: Array<{ method: string; params: Record<string, unknown> }> = [];
  const ch = new RequestChannel(async (m) => void sent.push(m), async (method, params) => void notified.push({ method, params }));
  return { ch, sent, notified };
}

t.test('answers are matched by id, results and errors alike', async (t) => {
  const { ch, sent } = channel();
  const a = ch.request('tools/call', { name: 'a' }, { timeoutMs: 1000 });
  const b = ch.request('tools/call', { name: 'b' }, { timeoutMs: 1000 });
  t.equal(sent.length, 2);
  t.not(sent[0]!.id, sent[1]!.id, 'distinct ids');
  t.type(sent[0]!.id, 'string', 'string ids, never the SDK client numeric ones');
  t.ok(ch.accept({ jsonrpc: '2.0', id: sent[1]!.id, error: { code: -32602, message: 'bad', data: { x: 1 } } }));
  t.ok(ch.accept({ jsonrpc: '2.0', id: sent[0]!.id, result: { content: [] } }));
  t.same(await a, { content: [] });
  const error = await b.catch((e: unknown) => e);
  t.ok(error instanceof McpError);
  t.equal((error as McpError).code, -32602);
  t.same((error as McpError).data, { x: 1 });
  t.equal(ch.inflight, 0);
});

t.test('messages that are not our answers go on to the SDK client', async (t) => {
  const { ch } = channel();
  t.notOk(ch.accept({ jsonrpc: '2.0', id: 7, result: {} }), 'numeric id: the SDK client request');
  t.notOk(ch.accept({ jsonrpc: '2.0', method: 'notifications/progress', params: {} }));
  t.notOk(ch.accept({ jsonrpc: '2.0', id: 'x-1', method: 'sampling/createMessage', params: {} }), 'a backend request with a string id');
  t.ok(ch.accept({ jsonrpc: '2.0', id: 'gatehouse-999', result: {} }), 'a late answer to a request we gave up on is swallowed');
});

t.test('a timeout rejects with RequestTimeout and tells the backend', async (t) => {
  const { ch, sent, notified } = channel();
  const error = await ch.request('tools/call', {}, { timeoutMs: 20 }).catch((e: unknown) => e);
  t.equal((error as McpError).code, ErrorCode.RequestTimeout);
  t.same(notified, [{ method: 'notifications/cancelled', params: { requestId: sent[0]!.id, reason: 'timeout' } }]);
  t.ok(ch.accept({ jsonrpc: '2.0', id: sent[0]!.id, result: {} }), 'the late answer is dropped');
  t.equal(ch.inflight, 0);
});

t.test('each request times out at its own deadline, whatever the others in flight do', async (t) => {
  const { ch, sent, notified } = channel();
  const started = performance.now();
  const settledAt = (p: Promise<unknown>) => p.then(() => ({ ok: true, ms: performance.now() - started }), (e: unknown) => ({ ok: false, code: (e as McpError).code, ms: performance.now() - started }));
  const long = settledAt(ch.request('tools/call', { name: 'long' }, { timeoutMs: 800 }));
  const answered = settledAt(ch.request('tools/call', { name: 'answered' }, { timeoutMs: 150 }));
  const short = settledAt(ch.request('tools/call', { name: 'short' }, { timeoutMs: 300 }));
  setTimeout(() => ch.accept({ jsonrpc: '2.0', id: sent[1]!.id, result: {} }), 10);
  const [l, a, s] = await Promise.all([long, answered, short]);
  t.match(a, { ok: true }, 'answered before its deadline');
  t.match(s, { ok: false, code: ErrorCode.RequestTimeout });
  t.ok(s.ms >= 299 && s.ms < 790, `the 300 ms request timed out after ${s.ms.toFixed(0)} ms, not at the answered one's deadline`);
  t.match(l, { ok: false, code: ErrorCode.RequestTimeout });
  t.ok(l.ms >= 799, `the 800 ms request, started first, timed out after ${l.ms.toFixed(0)} ms`);
  t.same(notified.map((n) => n.params.requestId), [sent[2]!.id, sent[0]!.id], 'the backend is told of each, in deadline order');
  t.equal(ch.inflight, 0);
  const quick = await ch.request('tools/call', {}, { timeoutMs: 30 }).catch((e: unknown) => e);
  t.equal((quick as McpError).code, ErrorCode.RequestTimeout, 'a request after an idle spell still times out');
});

t.test('the caller cancelling rejects with its reason and tells the backend', async (t) => {
  const { ch, sent, notified } = channel();
  const cancellation = new Cancellation();
  const pending = ch.request('tools/call', {}, { timeoutMs: 10_000, cancellation });
  cancellation.abort(new Error('client went away'));
  const error = await pending.catch((e: unknown) => e);
  t.equal((error as Error).message, 'client went away');
  t.same(notified, [{ method: 'notifications/cancelled', params: { requestId: sent[0]!.id, reason: 'client went away' } }]);
  const already = await ch.request('tools/call', {}, { timeoutMs: 1000, cancellation }).catch((e: unknown) => e);
  t.equal((already as Error).message, 'client went away', 'an already aborted signal sends nothing');
  t.equal(sent.length, 1);
});

t.test('a failed send rejects that request; close fails all in flight and later ones', async (t) => {
  const failing = new RequestChannel(async () => { throw new Error('socket hang up'); }, async () => {});
  t.equal(((await failing.request('ping', undefined, { timeoutMs: 1000 }).catch((e: unknown) => e)) as Error).message, 'socket hang up');
  const { ch } = channel();
  const inflight = ch.request('tools/call', {}, { timeoutMs: 10_000 });
  ch.close();
  t.equal(((await inflight.catch((e: unknown) => e)) as McpError).code, ErrorCode.ConnectionClosed);
  t.equal(((await ch.request('ping', undefined, { timeoutMs: 1000 }).catch((e: unknown) => e)) as McpError).code, ErrorCode.ConnectionClosed);
});

t.test('the sender is told when a request is abandoned (timeout, cancel, close), never after an answer', async (t) => {
  const tickets: Array<{ abandoned: boolean; abandon?: () => void }> = [];
  const closed: number[] = [];
  const ch = new RequestChannel(async (_m, ticket) => {
    const index = tickets.push(ticket) - 1;
    ticket.abandon = () => closed.push(index);
  }, async () => {});
  await ch.request('tools/call', {}, { timeoutMs: 10 }).catch(() => {});
  const cancellation = new Cancellation();
  const cancelled = ch.request('tools/call', {}, { timeoutMs: 10_000, cancellation }).catch(() => {});
  cancellation.abort(new Error('stop'));
  await cancelled;
  const answered = ch.request('tools/call', {}, { timeoutMs: 10_000 });
  ch.accept({ jsonrpc: '2.0', id: 'gatehouse-3', result: {} });
  await answered;
  const inflight = ch.request('tools/call', {}, { timeoutMs: 10_000 }).catch(() => {});
  ch.close();
  await inflight;
  t.same(closed, [0, 1, 3], 'timed out, cancelled and closed requests are abandoned; the answered one is not');
  t.same(tickets.map((ticket) => ticket.abandoned), [true, true, false, true]);
});

t.test('a cancellation calls its listeners once, in order, and removed ones not at all', async (t) => {
  const cancellation = new Cancellation();
  const calls: string[] = [];
  cancellation.onAbort((reason) => calls.push(`a:${String(reason)}`));
  const remove = cancellation.onAbort(() => calls.push('removed'));
  cancellation.onAbort((reason) => calls.push(`b:${String(reason)}`));
  remove();
  cancellation.abort('first');
  cancellation.abort('second');
  t.same(calls, ['a:first', 'b:first']);
  t.equal(cancellation.reason, 'first');
  t.ok(cancellation.aborted);
  cancellation.onAbort(() => calls.push('late'));
  t.same(calls, ['a:first', 'b:first'], 'a listener added after the abort is not called');
});
