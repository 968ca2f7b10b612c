import t, { type Test } from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { sendBody, writeLoneChunksPlainly } from '../../src/http/respond.js';

/** A server whose sockets count their plain writes and their writevs (Node's own, under ours). */
async function countingServer(t: Test, handler: http.RequestListener) {
  const counts = { writes: 0, writevs: 0 };
  const server = http.createServer(handler);
  server.on('connection', (socket: Socket) => {
    const nodeWritev = socket._writev!;
    socket._writev = function (chunks, callback) {
      counts.writevs++;
      return nodeWritev.call(this, chunks, callback);
    };
    writeLoneChunksPlainly(socket);
    const write = socket._write;
    socket._write = function (chunk, encoding, callback) {
      counts.writes++;
      return write.call(this, chunk, encoding, callback);
    };
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return { counts, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

t.test('a response ended with its body leaves in one plain write, not a writev', async (t) => {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { text: 'héllo' } });
  const { counts, url } = await countingServer(t, (_req, res) => sendBody(res, 200, { 'content-type': 'application/json' }, body));
  for (let i = 0; i < 3; i++) {
    const res = await fetch(url, { method: 'POST', body: '{}' });
    t.equal(res.status, 200);
    t.equal(await res.text(), body, 'the body arrives whole');
  }
  t.equal(counts.writevs, 0, 'no writev');
  t.equal(counts.writes, 3, 'one write per response');
});

t.test('a response written in several pieces still leaves with Node\'s writev, whole and in order', async (t) => {
  const { counts, url } = await countingServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.cork();
    res.write('one ');
    res.write('two ');
    res.end('three');
  });
  const res = await fetch(url);
  t.equal(await res.text(), 'one two three');
  t.ok(counts.writevs >= 1, `Node's writev wrote the pieces (${counts.writevs})`);
});
