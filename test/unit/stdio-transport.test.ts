import t from 'tap';
import type { Readable } from 'node:stream';
import { StdioBackendTransport } from '../../src/backends/stdio.js';

const node = process.execPath;
const env = { PATH: process.env.PATH ?? '' };

/** A child that echoes stdin back on stdout in 7-byte pieces a millisecond apart, so lines arrive split. */
const ECHO = `
const queue = [];
let writing = false;
function pump() {
  if (queue.length === 0) { writing = false; return; }
  writing = true;
  process.stdout.write(queue.shift(), () => setTimeout(pump, 1));
}
process.stdin.on('data', (d) => {
  for (let i = 0; i < d.length; i += 7) queue.push(d.subarray(i, i + 7));
  if (!writing) pump();
});
`;

t.test('messages round-trip, lines split across chunks are joined, many sends in one turn all arrive', async (t) => {
  const transport = new StdioBackendTransport({ command: node, args: ['-e', ECHO], env });
  const received: unknown[] = [];
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  transport.onmessage = (message) => {
    received.push(message);
    if (received.length === 40) done();
  };
  await transport.start();
  t.type(transport.pid, 'number');
  await Promise.all(Array.from({ length: 40 }, (_, i) => transport.send({ jsonrpc: '2.0', id: i, method: 'ping', params: { text: 'é'.repeat(i) } })));
  await all;
  t.same(received.map((m) => (m as { id: number }).id).sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
  t.same((received.find((m) => (m as { id: number }).id === 7) as { params: unknown }).params, { text: 'é'.repeat(7) }, 'multi-byte characters survive chunking');
  const closed = new Promise<void>((resolve) => (transport.onclose = resolve));
  await transport.close();
  await closed;
  await t.rejects(transport.send({ jsonrpc: '2.0', method: 'x' }), /Not connected/);
});

t.test('lines that are not JSON-RPC are reported, not delivered, and the stream goes on', async (t) => {
  const script = `process.stdout.write('not json\\n{"hello":1}\\n\\n{"jsonrpc":"2.0","method":"notifications/x"}\\n'); setTimeout(() => {}, 5000)`;
  const transport = new StdioBackendTransport({ command: node, args: ['-e', script], env });
  const errors: string[] = [];
  const messages: unknown[] = [];
  transport.onerror = (error) => errors.push(error.message);
  const got = new Promise<void>((resolve) => (transport.onmessage = (m) => { messages.push(m); resolve(); }));
  await transport.start();
  await got;
  t.same(messages, [{ jsonrpc: '2.0', method: 'notifications/x' }]);
  t.equal(errors.length, 2);
  t.match(errors[0], /not JSON/);
  t.match(errors[1], /not a JSON-RPC 2.0 message/);
  await transport.close();
});

t.test('stderr goes to the caller; close escalates to SIGTERM and SIGKILL for a backend that will not exit', { timeout: 20_000 }, async (t) => {
  const script = `process.on('SIGTERM', () => {}); process.stdin.on('end', () => {}); process.stderr.write('diagnostics\\n'); setInterval(() => {}, 1000)`;
  let stderrText = '';
  const transport = new StdioBackendTransport({ command: node, args: ['-e', script], env }, (stream: Readable) => stream.on('data', (d) => (stderrText += d)));
  await transport.start();
  const closed = new Promise<void>((resolve) => (transport.onclose = resolve));
  const started = Date.now();
  await transport.close();
  await closed;
  t.ok(Date.now() - started >= 3_500, 'waited for stdin end, then SIGTERM, before SIGKILL');
  t.match(stderrText, /diagnostics/);
});

t.test('a command that does not exist fails start', async (t) => {
  const transport = new StdioBackendTransport({ command: '/nonexistent/backend-binary', args: [], env });
  transport.onerror = () => {};
  await t.rejects(transport.start(), /ENOENT/);
});
