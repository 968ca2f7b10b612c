import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody, BodyError } from '../http/body.js';
import { sendBody } from '../http/respond.js';
import { OAuthError, invalidRequest } from './errors.js';

/** JSON for OAuth endpoints: never cached (RFC 6749 §5.1). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendBody(res, status, { 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache', ...headers }, JSON.stringify(body));
}

export function sendOAuthError(res: ServerResponse, error: OAuthError): void {
  sendJson(res, error.status, { error: error.code, error_description: error.description }, error.headers);
}

/**
 * Reads an `application/x-www-form-urlencoded` body. Repeated parameters are refused (RFC 6749 §3.1:
 * parameters MUST NOT be included more than once).
 */
export async function readForm(req: IncomingMessage, limit: number): Promise<Map<string, string>> {
  const type = String(req.headers['content-type'] ?? '');
  if (!/^application\/x-www-form-urlencoded\b/i.test(type)) {
    req.resume();
    throw invalidRequest('the body must be application/x-www-form-urlencoded');
  }
  const raw = await readLimited(req, limit);
  return uniqueParams(new URLSearchParams(raw.toString('utf8')));
}

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = String(req.headers['content-type'] ?? '');
  if (!/^application\/json\b/i.test(type)) {
    req.resume();
    throw new OAuthError('invalid_client_metadata', 'the body must be application/json');
  }
  const raw = await readLimited(req, limit);
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new OAuthError('invalid_client_metadata', 'the body is not valid JSON');
  }
}

async function readLimited(req: IncomingMessage, limit: number): Promise<Buffer> {
  try {
    return await readBody(req, limit);
  } catch (error) {
    if (error instanceof BodyError) throw new OAuthError('invalid_request', error.message, error.status, undefined, { connection: 'close' });
    throw error;
  }
}

export function uniqueParams(params: URLSearchParams): Map<string, string> {
  const map = new Map<string, string>();
  for (const [key, value] of params) {
    if (map.has(key)) throw invalidRequest(`parameter "${key}" appears more than once`);
    map.set(key, value);
  }
  return map;
}

/** CORS for the public discovery documents (browser-based clients read them cross-origin). */
export function discoveryCors(res: ServerResponse): void {
  res.setHeader('access-control-allow-origin', '*');
  res.setHeader('access-control-allow-methods', 'GET, OPTIONS');
  res.setHeader('access-control-allow-headers', 'MCP-Protocol-Version, Content-Type, Authorization');
  res.setHeader('access-control-max-age', '600');
}
