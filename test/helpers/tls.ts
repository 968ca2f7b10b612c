/**
 * A throwaway self-signed certificate for 127.0.0.1 / localhost, made with the `openssl` CLI at test
 * time, and an HTTPS server whose answers the test scripts per path (counting the requests).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Why certificates cannot be made here, or undefined when `openssl` works. */
export function opensslMissing(): string | undefined {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    return `the openssl CLI is not available (${(error as Error).message})`;
  }
}

/** A self-signed certificate valid for IP 127.0.0.1 and DNS localhost (key and cert PEM). */
export function selfSignedCertificate(dir: string): { key: string; cert: string } {
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-addext', 'basicConstraints=critical,CA:TRUE',
  ], { stdio: 'pipe' });
  return { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8') };
}

export type Route = (req: IncomingMessage, res: ServerResponse) => void;

export interface ScriptedHttps {
  server: Server;
  port: number;
  /** Path → handler; replace entries at any time. */
  routes: Map<string, Route>;
  /** Path → number of requests received. */
  hits: Map<string, number>;
  url(path: string): string;
  close(): Promise<void>;
}

export async function startScriptedHttps(credentials: { key: string; cert: string }, host = '127.0.0.1'): Promise<ScriptedHttps> {
  const routes = new Map<string, Route>();
  const hits = new Map<string, number>();
  const server = createServer(credentials, (req, res) => {
    const path = new URL(req.url ?? '/', 'https://x').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const route = routes.get(path);
    if (route) route(req, res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  return {
    server,
    port,
    routes,
    hits,
    url: (path) => `https://${host}:${port}${path}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** A route answering `body` (JSON-encoded unless a string) with status and headers. */
export function answer(body: unknown, status = 200, headers: Record<string, string> = {}): Route {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
}
