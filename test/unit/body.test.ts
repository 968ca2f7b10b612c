import t, { type Test } from 'tap';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { readBody, BodyError } from '../../src/http/body.js';

const LIMIT = 1000;

interface Seen {
  /**
   * Whether the body was in hand after a few promise reactions, before any `process.nextTick`
   * callback ran: only a body taken from the buffer at once is; the stream's events need ticks.
   */
  atOnce: boolean;
}

/**
 * A server that reads each body the way the MCP front does (after an await, as authentication
 * comes first) and answers with its length and bytes, or with the BodyError's status.
 */
async function echoServer(t: Test) {
  const seen: Seen[] = [];
  const server = http.createServer(async (req, res) => {
    await Promise.resolve();
    try {
      const reading = readBody(req, LIMIT);
      let settled = false;
      reading.then(() => (settled = true), () => {});
      for (let i = 0; i < 3; i++) await Promise.resolve();
      seen.push({ atOnce: settled });
      const body = await reading;
      answer(res, 200, JSON.stringify({ length: body.length, hex: body.toString('hex') }));
    } catch (error) {
      answer(res, error instanceof BodyError ? error.status : 500, error instanceof Error ? error.message : '');
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return { seen, port: (server.address() as AddressInfo).port };
}

function answer(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-length': Buffer.byteLength(text) }).end(text);
}

/** Writes `pieces` on one raw connection (pausing between them) and returns every response seen. */
async function exchange(port: number, pieces: Array<string | Buffer>, responses: number, pauseMs = 20): Promise<Array<{ status: number; body: string }>> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  for (const [i, piece] of pieces.entries()) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    socket.write(piece);
  }
  const parsed = () => {
    const out: Array<{ status: number; body: string }> = [];
    let rest = received;
    while (rest.length > 0) {
      const headEnd = rest.indexOf('\r\n\r\n');
      if (headEnd === -1) break;
      const head = rest.slice(0, headEnd);
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (rest.length < headEnd + 4 + length) break;
      out.push({ status: Number(head.slice(9, 12)), body: rest.slice(headEnd + 4, headEnd + 4 + length) });
      rest = rest.slice(headEnd + 4 + length);
    }
    return out;
  };
  const deadline = Date.now() + 5000;
  while (parsed().length < responses && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  socket.destroy();
  return parsed();
}

const head = (length: number | 'chunked') =>
  `POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${length === 'chunked' ? 'transfer-encoding: chunked' : `content-length: ${length}`}\r\n\r\n`;
const hexOf = (text: string | Buffer) => Buffer.from(text).toString('hex');

t.test('a body that arrived with its head is handed over whole, at once', async (t) => {
  const { seen, port } = await echoServer(t);
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo__echo', arguments: { text: 'héllo ✓' } } });
  const [response] = await exchange(port, [head(Buffer.byteLength(body)) + body], 1);
  t.equal(response?.status, 200);
  t.same(JSON.parse(response!.body), { length: Buffer.byteLength(body), hex: hexOf(body) }, 'byte for byte');
  t.same(seen, [{ atOnce: true }], 'taken at once, not through the stream events');
});

t.test('two requests in one write on a keep-alive connection each get their own body', async (t) => {
  const { port } = await echoServer(t);
  const one = '{"a":1}';
  const two = '{"b":"two"}';
  const responses = await exchange(port, [head(one.length) + one + head(two.length) + two], 2);
  t.same(responses.map((r) => JSON.parse(r.body).hex), [hexOf(one), hexOf(two)]);
});

t.test('a body that follows its head, in pieces, is waited for', async (t) => {
  const { seen, port } = await echoServer(t);
  const body = Buffer.from(JSON.stringify({ text: 'ünïcødé split across writes' }));
  const cut = body.indexOf(0xc3) + 1; // inside a two-byte character
  const responses = await exchange(port, [head(body.length), body.subarray(0, cut), body.subarray(cut)], 1);
  t.same(JSON.parse(responses[0]!.body), { length: body.length, hex: hexOf(body) });
  t.same(seen, [{ atOnce: false }], 'waited for');
});

t.test('a body partly arrived with its head is not taken until the rest has come', async (t) => {
  const { port } = await echoServer(t);
  const body = '{"text":"first half|second half"}';
  const cut = body.indexOf('|');
  const responses = await exchange(port, [head(body.length) + body.slice(0, cut), body.slice(cut)], 1);
  t.same(JSON.parse(responses[0]!.body), { length: body.length, hex: hexOf(body) });
});

t.test('a chunked body is read whole', async (t) => {
  const { port } = await echoServer(t);
  const responses = await exchange(port, [`${head('chunked')}4\r\n{"a"\r\n`, '3\r\n:1}\r\n0\r\n\r\n'], 1);
  t.same(JSON.parse(responses[0]!.body), { length: 7, hex: hexOf('{"a":1}') });
});

t.test('an empty body is an empty buffer', async (t) => {
  const { port } = await echoServer(t);
  const responses = await exchange(port, [head(0)], 1);
  t.same(JSON.parse(responses[0]!.body), { length: 0, hex: '' });
});

t.test('a body over the limit is refused with 413, declared or not, and one at the limit is read', async (t) => {
  const { port } = await echoServer(t);
  const big = 'x'.repeat(LIMIT + 1);
  const [declared] = await exchange(port, [head(big.length) + big], 1);
  t.equal(declared?.status, 413, 'declared Content-Length over the limit');
  const [chunked] = await exchange(port, [`${head('chunked')}${(LIMIT + 1).toString(16)}\r\n${big}\r\n0\r\n\r\n`], 1);
  t.equal(chunked?.status, 413, 'chunked body crossing the limit');
  const exact = 'y'.repeat(LIMIT);
  const [atLimit] = await exchange(port, [head(exact.length) + exact], 1);
  t.equal(JSON.parse(atLimit!.body).length, LIMIT, 'a body of exactly the limit is read');
});
