/**
 * A Streamable HTTP backend over TLS (a self-signed certificate for localhost, trusted by the
 * gateway process through NODE_EXTRA_CA_CERTS): the handshake (the SDK transport on undici) and the
 * forwarded calls (the gateway's HTTP/1.1 pool, with SNI) both reach it, and sequential calls reuse
 * one keep-alive connection.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { selfSignedCertificate } from '../helpers/tls.js';
import { requireSystemBinary } from '../helpers/system.js';
import { serveCli } from '../helpers/cli.js';

const TOKEN = 'tls-backend-test-token-0123456789';

if (requireSystemBinary(t, { names: ['openssl'], debianPackage: 'openssl' })) {
  const dir = t.testdir();
  const credentials = selfSignedCertificate(dir);
  const caPath = join(dir, 'ca.pem');
  writeFileSync(caPath, credentials.cert);

  const servedNames: string[] = [];
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const backend = createServer(credentials, async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req as IncomingMessage) chunks.push(chunk as Buffer);
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
    const sid = req.headers['mcp-session-id'];
    let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
    if (!transport) {
      if (sid) return void res.writeHead(404).end();
      const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: true,
        onsessioninitialized: (id: string): void => void transports.set(id, created),
      });
      const server = new Server({ name: 'tls-backend', version: '1.0.0' }, { capabilities: { tools: {} } });
      server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [{ name: 'echo', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } }] }));
      server.setRequestHandler(CallToolRequestSchema, async (request) => ({ content: [{ type: 'text', text: `secure: ${String(request.params.arguments?.text)}` }] }));
      await server.connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res, body);
  });
  backend.on('secureConnection', (socket: TLSSocket) => servedNames.push(String((socket as TLSSocket & { servername?: string }).servername)));
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    backend.closeAllConnections();
    backend.close();
  });
  const { port } = backend.address() as { port: number };

  const configPath = join(dir, 'servers.json');
  writeFileSync(configPath, JSON.stringify({
    mcpServers: { secure: { url: `https://localhost:${port}/mcp`, transport: 'streamable-http' } },
    serverAuth: { providers: ['bearer'], bearer: { tokens: { [TOKEN]: { subject: 'tester', roles: ['caller'] } } } },
    acl: { default: 'deny', rules: [{ roles: ['caller'], tools: ['*'], policy: 'allow' }] },
  }));
  const gateway = await serveCli(t, configPath, '127.0.0.1:0', [], { NODE_EXTRA_CA_CERTS: caPath });

  t.test('calls reach a TLS backend and reuse one connection', async (t) => {
    const client = new Client({ name: 'tls-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), { requestInit: { headers: { authorization: `Bearer ${TOKEN}` } } }));
    t.teardown(() => client.close());
    let tools: string[] = [];
    for (let attempt = 0; attempt < 100 && !tools.includes('secure__echo'); attempt++) {
      tools = (await client.listTools()).tools.map((tool) => tool.name);
      if (!tools.includes('secure__echo')) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    t.ok(tools.includes('secure__echo'), 'the backend was reached over TLS and listed');

    const first = await client.callTool({ name: 'secure__echo', arguments: { text: 'one' } });
    t.same(first.content, [{ type: 'text', text: 'secure: one' }]);
    const connectionsAfterFirstCall = servedNames.length;
    for (let i = 0; i < 5; i++) {
      const result = await client.callTool({ name: 'secure__echo', arguments: { text: `call ${i}` } });
      t.same(result.content, [{ type: 'text', text: `secure: call ${i}` }]);
    }
    t.equal(servedNames.length, connectionsAfterFirstCall, 'five more calls opened no new TLS connection');
    t.ok(servedNames.every((name) => name === 'localhost'), 'SNI names the backend host');
  });
}
