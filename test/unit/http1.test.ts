import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { Http1Pool, headerLines, type ExchangeHandler, type PostRequest, type ResponseHeaders } from '../../src/backends/http1.js';

/**
 * A raw TCP server that answers each request (once its head and Content-Length body arrived) with
 * whatever `answer` returns, written in the given pieces. It records the requests and connections.
 */
async function rawServer(t: Test, answer: (request: string, index: number) => { pieces: Array<string | Buffer>; close?: boolean; delayMs?: number } | undefined) {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', async (data) => {
      buffered += data.toString('latin1');
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/content-length: (\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        const request = buffered.slice(0, end + 4 + length);
        buffered = buffered.slice(end + 4 + length);
        requests.push(request);
        const reply = answer(request, requests.length - 1);
        if (!reply) continue;
        for (const piece of reply.pieces) {
          socket.write(piece);
          await new Promise((resolve) => setTimeout(resolve, reply.delayMs ?? 2));
        }
        if (reply.close) socket.end();
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { origin: `http://127.0.0.1:${port}`, requests, connections: () => connections, sockets };
}

interface Outcome {
  status?: number;
  headers?: ResponseHeaders;
  body: string;
  error?: Error;
}

function post(pool: Http1Pool, body = '{"jsonrpc":"2.0","id":1,"method":"ping"}', extra: Partial<PostRequest> = {}): { done: Promise<Outcome>; abort(reason: Error): void } {
  const chunks: Buffer[] = [];
  const outcome: Outcome = { body: '' };
  let settle!: (o: Outcome) => void;
  const done = new Promise<Outcome>((resolve) => (settle = resolve));
  const handler: ExchangeHandler = {
    onHead(status, headers) {
      outcome.status = status;
      outcome.headers = headers;
    },
    onData: (chunk) => void chunks.push(chunk), // kept as is, as the poster does: handed-over chunks are the handler's
    onEnd() {
      outcome.body = Buffer.concat(chunks).toString('utf8');
      settle(outcome);
    },
    onError(error) {
      outcome.body = Buffer.concat(chunks).toString('utf8');
      outcome.error = error;
      settle(outcome);
    },
  };
  const exchange = pool.post({ path: '/mcp', headerLines: headerLines({ 'content-type': 'application/json' }), body, idleTimeoutMs: 5_000, ...extra }, handler);
  return { done, abort: (reason) => exchange.abort(reason) };
}

const json = (text: string, extra = '') => `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${extra}content-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`;

t.test('a Content-Length answer split into single bytes arrives whole, and the connection is reused', async (t) => {
  const body = '{"jsonrpc":"2.0","id":1,"result":{"text":"héllo"}}';
  const server = await rawServer(t, () => ({ pieces: [...Buffer.from(json(body, 'Mcp-Session-Id: abc\r\nX-Twice: a\r\nx-twice: b\r\nx-padded: \t one \t two \t\r\nx-empty:\r\n'))].map((b) => Buffer.from([b])), delayMs: 0 }));
  const pool = new Http1Pool(server.origin);
  const first = await post(pool).done;
  t.notOk(first.error);
  t.equal(first.status, 200);
  t.equal(first.body, body);
  t.equal(first.headers!.get('mcp-session-id'), 'abc', 'names are lower-cased');
  t.equal(first.headers!.get('x-twice'), 'a, b', 'repeated headers are joined');
  t.equal(first.headers!.get('x-padded'), 'one \t two', 'spaces and tabs around a value are dropped, not inside it');
  t.equal(first.headers!.get('x-empty'), '', 'an empty value');
  const second = await post(pool, '{"jsonrpc":"2.0","id":2,"method":"ping"}').done;
  t.equal(second.body, body);
  t.equal(server.connections(), 1, 'one keep-alive connection for both');
  t.match(server.requests[0]!, /^POST \/mcp HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\ncontent-type: application\/json\r\ncontent-length: 40\r\n\r\n\{"jsonrpc"/);
  await pool.close(100);
});

t.test('large answers on several connections at once arrive intact (reads share one buffer)', async (t) => {
  // Each answer is several reads long and differs from the others, so a chunk kept without being
  // copied out of the shared read buffer would show up as another answer's bytes.
  const answers = ['a', 'b', 'c', 'd'].map((letter, i) => `{"jsonrpc":"2.0","id":${i},"result":{"text":"${letter.repeat(300_000 + i)}"}}`);
  const server = await rawServer(t, (request) => {
    const id = Number(/"id":(\d+)/.exec(request)![1]);
    const whole = Buffer.from(json(answers[id]!));
    return { pieces: [whole.subarray(0, 100_000), whole.subarray(100_000)], delayMs: 5 };
  });
  const pool = new Http1Pool(server.origin);
  const outcomes = await Promise.all(answers.map((_answer, id) => post(pool, `{"jsonrpc":"2.0","id":${id},"method":"ping"}`).done));
  t.equal(server.connections(), 4, 'one connection per exchange in flight');
  for (const [id, outcome] of outcomes.entries()) {
    t.notOk(outcome.error, `answer ${id}: no error`);
    t.ok(outcome.body === answers[id], `answer ${id} arrived byte for byte (${outcome.body.length} of ${answers[id]!.length} characters)`);
  }
  await pool.close(100);
});

t.test('a chunked answer with extensions and trailers, cut at awkward places', async (t) => {
  const server = await rawServer(t, () => ({
    pieces: ['HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n', '8;ext=1\r\ndata: {', '}', '\r', '\nA\r\n\n\nid: 1\n\n\n\r\n0\r\nx-trailer: y\r\n', '\r\n'],
  }));
  const pool = new Http1Pool(server.origin);
  const outcome = await post(pool).done;
  t.notOk(outcome.error);
  t.equal(outcome.headers!.get('content-type'), 'text/event-stream');
  t.equal(outcome.body, 'data: {}\n\nid: 1\n\n\n');
  const again = await post(pool).done;
  t.notOk(again.error);
  t.equal(server.connections(), 1, 'reused after the last chunk and trailers');
  await pool.close(100);
});

t.test('interim 1xx responses are skipped', async (t) => {
  const server = await rawServer(t, () => ({ pieces: ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n', json('{"ok":true}')] }));
  const pool = new Http1Pool(server.origin);
  const outcome = await post(pool).done;
  t.equal(outcome.status, 200);
  t.equal(outcome.body, '{"ok":true}');
  await pool.close(100);
});

t.test('Connection: close, HTTP/1.0 and a body read until close are not reused', async (t) => {
  const replies = [
    { pieces: [json('{"a":1}', 'connection: close\r\n')], close: true },
    { pieces: ['HTTP/1.0 200 OK\r\ncontent-length: 7\r\n\r\n{"b":2}'], close: true },
    { pieces: ['HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"c":', '3}'], close: true },
    { pieces: [json('{"d":4}', 'keep-alive: timeout=1\r\n')] },
    { pieces: [json('{"e":5}')] },
  ];
  const server = await rawServer(t, (_request, index) => replies[index]);
  const pool = new Http1Pool(server.origin);
  t.equal((await post(pool).done).body, '{"a":1}');
  t.equal((await post(pool).done).body, '{"b":2}');
  const untilClose = await post(pool).done;
  t.notOk(untilClose.error);
  t.equal(untilClose.body, '{"c":3}', 'a body without length ends with the connection');
  t.equal((await post(pool).done).body, '{"d":4}');
  t.equal((await post(pool).done).body, '{"e":5}');
  t.equal(server.connections(), 5, 'a keep-alive hint of 1 s leaves no safe window for reuse either');
  await pool.close(100);
});

t.test('framing errors fail the exchange and close its connection', async (t) => {
  const bad: Array<[string, Array<string | Buffer>, RegExp]> = [
    ['malformed status line', ['HTTP/2 200 OK\r\n\r\n'], /status line/],
    ['conflicting Content-Length', ['HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!'], /Content-Length/],
    ['unsupported transfer coding', ['HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n'], /transfer coding/],
    ['bare LF in a chunk line', ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\nhi\r\n0\r\n\r\n'], /bare LF/],
    ['malformed chunk size', ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n'], /chunk size/],
    ['obsolete line folding', ['HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\ncontent-length: 0\r\n\r\n'], /header/],
    ['whitespace before the colon', ['HTTP/1.1 200 OK\r\ncontent-length : 0\r\n\r\n'], /header line/],
    ['a field without a colon', ['HTTP/1.1 200 OK\r\ncontent-length 0\r\n\r\n'], /header line/],
    ['an empty field name', ['HTTP/1.1 200 OK\r\n: 1\r\ncontent-length: 0\r\n\r\n'], /header line/],
    ['a bare CR in a field value', ['HTTP/1.1 200 OK\r\nx-a: 1\rcontent-length: 5\r\ncontent-length: 0\r\n\r\n'], /header line/],
    ['bytes after the response', [json('{}') + 'HTTP/1.1 200 OK\r\n'], /after the response/],
    ['a protocol upgrade', ['HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n'], /upgrade/],
    ['the connection closes mid-body', ['HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial":'], /closed the connection/],
  ];
  for (const [name, pieces, message] of bad) {
    const server = await rawServer(t, () => ({ pieces, close: name.includes('mid-body') }));
    const pool = new Http1Pool(server.origin);
    const outcome = await post(pool).done;
    t.match(outcome.error?.message, message, name);
    await new Promise((resolve) => setTimeout(resolve, 20));
    t.equal(server.sockets.size, 0, `${name}: the connection is closed`);
    await pool.close(100);
  }
});

t.test('a response head larger than 64 KB is refused', async (t) => {
  const server = await rawServer(t, () => ({ pieces: [`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70 * 1024)}\r\ncontent-length: 0\r\n\r\n`] }));
  const pool = new Http1Pool(server.origin);
  const outcome = await post(pool).done;
  t.match(outcome.error?.message, /head too large/);
  await pool.close(100);
});

t.test('abort closes the connection and reports the reason once', async (t) => {
  const server = await rawServer(t, () => ({ pieces: ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n', '5\r\nhello\r\n'] }));
  const pool = new Http1Pool(server.origin);
  const exchange = post(pool);
  await new Promise((resolve) => setTimeout(resolve, 50));
  exchange.abort(new Error('request abandoned'));
  const outcome = await exchange.done;
  t.equal(outcome.error?.message, 'request abandoned');
  t.equal(outcome.body, 'hello', 'what had arrived was delivered');
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(server.sockets.size, 0, 'the server sees the connection close');
  exchange.abort(new Error('again'));
  await pool.close(100);
});

t.test('idle connections are closed by the client at the end of their keep-alive window, busy ones are not', async (t) => {
  // A hint of 2 s leaves a 1 s window (the margin keeps us clear of the server's own close).
  const answer = json('{"ok":true}', 'keep-alive: timeout=2\r\n');
  // The slow answer's last byte comes 2 s after the rest.
  const server = await rawServer(t, (request) => request.includes('"slow"')
    ? { pieces: [answer.slice(0, -1), answer.slice(-1)], delayMs: 2_000 }
    : { pieces: [answer], delayMs: 0 });
  const pool = new Http1Pool(server.origin);
  const [first, second] = await Promise.all([post(pool).done, post(pool).done]);
  t.notOk(first.error ?? second.error);
  t.equal(server.sockets.size, 2, 'two connections, both kept for reuse');
  const slow = post(pool, '{"slow":true}', { idleTimeoutMs: 5_000 });
  await new Promise((resolve) => setTimeout(resolve, 1_400));
  t.equal(server.sockets.size, 1, 'the idle one was closed after its window; the busy one is still open');
  t.notOk((await slow.done).error, 'the exchange still in flight was not cut');
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  t.equal(server.sockets.size, 0, 'and it is closed in turn, once idle past its window');
  const later = await post(pool).done;
  t.notOk(later.error);
  t.equal(server.connections(), 3, 'the next request opens a new connection');
  await pool.close(100);
});

t.test('no answer within the idle timeout fails the exchange', async (t) => {
  const server = await rawServer(t, () => undefined);
  const pool = new Http1Pool(server.origin);
  const started = Date.now();
  const outcome = await post(pool, '{}', { idleTimeoutMs: 150 }).done;
  t.match(outcome.error?.message, /did not answer in time/);
  t.ok(Date.now() - started >= 140, 'not before the timeout');
  await pool.close(100);
});

t.test('a refused connection is an error, not a hang', async (t) => {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  const pool = new Http1Pool(`http://127.0.0.1:${port}`);
  const outcome = await post(pool).done;
  t.match((outcome.error as NodeJS.ErrnoException | undefined)?.code, 'ECONNREFUSED');
  await pool.close(100);
});

t.test('past the connection limit, requests wait for a free connection', async (t) => {
  const server = await rawServer(t, (request) => ({ pieces: [json(request.slice(request.indexOf('\r\n\r\n') + 4))], delayMs: 10 }));
  const pool = new Http1Pool(server.origin, 1);
  const outcomes = await Promise.all([post(pool, '{"n":1}').done, post(pool, '{"n":2}').done, post(pool, '{"n":3}').done]);
  t.same(outcomes.map((o) => o.body), ['{"n":1}', '{"n":2}', '{"n":3}']);
  t.equal(server.connections(), 1);
  const queued = post(pool, '{"n":4}');
  const waiting = post(pool, '{"n":5}');
  waiting.abort(new Error('gave up while queued'));
  t.equal((await waiting.done).error?.message, 'gave up while queued');
  t.equal((await queued.done).body, '{"n":4}');
  await pool.close(100);
});

t.test('close waits for an exchange in flight, then cuts it; later posts fail', async (t) => {
  const server = await rawServer(t, () => ({ pieces: ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'] }));
  const pool = new Http1Pool(server.origin);
  const open = post(pool);
  await new Promise((resolve) => setTimeout(resolve, 30));
  const started = Date.now();
  await pool.close(150);
  t.ok(Date.now() - started >= 140, 'the grace period was given');
  t.match((await open.done).error?.message, /shutting down/);
  t.match((await post(pool).done).error?.message, /pool is closed/);
});

t.test('header lines refuse names and values that could split a request', async (t) => {
  t.equal(headerLines({ 'x-a': '1', Authorization: 'Bearer x' }), 'x-a: 1\r\nAuthorization: Bearer x\r\n');
  t.throws(() => headerLines({ 'x-a': 'one\r\nx-injected: 1' }), /invalid value for header x-a/);
  t.throws(() => headerLines({ 'x a': '1' }), /invalid header name/);
  t.throws(() => headerLines({ 'x-a\r\n': '1' }), /invalid header name/);
});
