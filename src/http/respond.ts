import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/**
 * Ends `res` with a complete body and its Content-Length (added to `headers`, a fresh object of the
 * caller's). Node then sends head and body in one write; after a bare `writeHead` it would choose
 * chunked framing and write five pieces, which costs every response a few microseconds.
 */
export function sendBody(res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: string): void {
  headers['content-length'] = Buffer.byteLength(body);
  res.writeHead(status, headers);
  res.end(body);
}
