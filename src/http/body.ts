import type { IncomingMessage } from 'node:http';

export class BodyError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * Reads a request body up to `limit` bytes. A larger body is refused with 413 as soon as the
 * limit is crossed; the rest is drained without being kept, so the response can still be sent.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  // A small request usually arrives with its head: then its whole Content-Length is already
  // buffered and is taken at once, without the stream's 'data' and 'end' events (three ticks).
  if (declared <= limit && req.readableLength === declared && req.readableFlowing === null && !req.readableEnded) {
    const whole = declared === 0 ? Buffer.alloc(0) : (req.read() as Buffer | null);
    if (whole !== null) return Promise.resolve(whole);
  }
  return new Promise((resolve, reject) => {
    const tooLarge = () => new BodyError(413, `Payload Too Large: the body limit is ${limit} bytes`);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.off('end', onEnd);
        chunks.length = 0;
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', (error) => reject(new BodyError(400, `Bad Request: ${error.message}`)));
  });
}
