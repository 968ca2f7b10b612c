import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { corkUntilTurnEnd } from '../../src/http/turn.js';

t.test('the first write of a turn leaves at once, the others when the turn ends', async (t) => {
  const received = new Map<string, string>();
  const server = net.createServer((socket) => {
    socket.on('data', (chunk) => {
      const text = String(chunk);
      received.set(text[0]!, (received.get(text[0]!) ?? '') + text);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const sockets = await Promise.all([0, 1, 2].map(async () => {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return socket;
  }));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const [a, b, c] = sockets as [net.Socket, net.Socket, net.Socket];

  corkUntilTurnEnd(a);
  a.write('a1');
  corkUntilTurnEnd(b);
  b.write('b1');
  corkUntilTurnEnd(c);
  c.write('c1');
  corkUntilTurnEnd(b);
  b.write('b2');
  t.equal(a.writableCorked, 0, 'the first socket of the turn is not held');
  t.equal(b.writableCorked, 2, 'later writes are held (once per write)');
  t.equal(c.writableCorked, 1);
  t.ok(b.writableLength > 0 && c.writableLength > 0, 'their bytes wait in the socket');

  await new Promise((resolve) => setImmediate(resolve));
  t.equal(b.writableCorked, 0, 'released at the end of the turn');
  t.equal(c.writableCorked, 0);

  // The next turn starts afresh: its first write is not held.
  corkUntilTurnEnd(c);
  c.write('c2');
  t.equal(c.writableCorked, 0, 'the first write of the next turn leaves at once');

  for (let i = 0; i < 100 && (received.get('b') !== 'b1b2' || received.get('c') !== 'c1c2'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.same(Object.fromEntries(received), { a: 'a1', b: 'b1b2', c: 'c1c2' }, 'every byte arrives, in order');
});

t.test('a socket destroyed while held does not stop the others', async (t) => {
  const server = net.createServer((socket) => socket.resume());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const [first, doomed, other] = await Promise.all([0, 1, 2].map(async () => {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return socket;
  })) as [net.Socket, net.Socket, net.Socket];
  t.teardown(() => {
    for (const socket of [first, doomed, other]) socket.destroy();
    server.close();
  });
  corkUntilTurnEnd(first);
  first.write('x');
  corkUntilTurnEnd(doomed);
  doomed.write('y');
  corkUntilTurnEnd(other);
  other.write('z');
  doomed.destroy();
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(other.writableCorked, 0, 'the other socket is released');
  t.equal(other.writableLength, 0, 'and its bytes are written');
});
