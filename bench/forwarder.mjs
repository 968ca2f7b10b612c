#!/usr/bin/env node
// A reference for the gateway's HTTP figures: the minimal hand-written JSON-RPC forwarder the issue
// compares against, doing only what a gateway cannot skip. Per request: the HS256 access token is
// checked (node:crypto HMAC with the key imported once, constant-time comparison, expiry), a
// `tools/call` name is matched against a 100-rule ACL (the last rule matches, as in the gateway's
// bench configuration) and its `<backend>__` prefix stripped, and the message is POSTed to the
// backend over a keep-alive node:http agent; the answer goes back as it came.
//   node bench/forwarder.mjs <backend /mcp URL> <HS256 secret>   (prints "listening <port>")
import { Agent, createServer, request } from 'node:http';
import { createHmac, createSecretKey, timingSafeEqual } from 'node:crypto';

const backend = new URL(process.argv[2]);
const key = createSecretKey(Buffer.from(process.argv[3]));
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const rules = Array.from({ length: 99 }, (_, i) => ({ role: `team-${i}`, prefix: `nothing_${i}__` }));
rules.push({ role: 'bench', prefix: '' });

/** The token's claims if it is an unexpired HS256 JWT signed with `key`, otherwise undefined. */
function verify(authorization) {
  if (!authorization?.startsWith('Bearer ')) return undefined;
  const [header, payload, signature] = authorization.slice(7).split('.');
  if (!signature) return undefined;
  const expected = createHmac('sha256', key).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  if (JSON.parse(Buffer.from(header, 'base64url').toString()).alg !== 'HS256') return undefined;
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  return typeof claims.exp === 'number' && claims.exp * 1000 > Date.now() ? claims : undefined;
}

const server = createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const claims = verify(req.headers.authorization);
  if (!claims) return void res.writeHead(401).end();
  const message = JSON.parse(Buffer.concat(chunks).toString());
  if (message.method === 'tools/call') {
    const roles = [...(claims.groups ?? []), ...(claims.roles ?? [])];
    const name = String(message.params?.name ?? '');
    if (!rules.some((rule) => roles.includes(rule.role) && name.startsWith(rule.prefix))) return void res.writeHead(403).end();
    message.params.name = name.slice(name.indexOf('__') + 2);
  }
  const body = JSON.stringify(message);
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(body) };
  for (const name of ['mcp-session-id', 'mcp-protocol-version']) if (req.headers[name]) headers[name] = req.headers[name];
  const upstream = request({ host: backend.hostname, port: backend.port, path: backend.pathname, method: 'POST', headers, agent }, async (answer) => {
    const parts = [];
    for await (const part of answer) parts.push(part);
    const out = Buffer.concat(parts);
    const back = { 'content-type': answer.headers['content-type'] ?? 'application/json', 'content-length': out.length };
    if (answer.headers['mcp-session-id']) back['mcp-session-id'] = answer.headers['mcp-session-id'];
    res.writeHead(answer.statusCode ?? 502, back).end(out);
  });
  upstream.on('error', () => res.writeHead(502).end());
  upstream.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
