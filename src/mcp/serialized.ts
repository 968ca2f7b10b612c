/**
 * A JSON-RPC result already serialized once (a page of a large list, the same for every caller
 * with the same roles until the catalogue changes). The front writes `text` as is; anything else
 * that serializes it gets the same value back through `toJSON`.
 */
export class SerializedResult {
  constructor(readonly text: string) {}

  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}

/** One JSON-RPC response as text, splicing a serialized result in without serializing it again. */
export function encodeResponse(response: unknown): string {
  const message = response as { result?: unknown; id?: unknown } | undefined;
  if (message && message.result instanceof SerializedResult) {
    return `{"jsonrpc":"2.0","id":${JSON.stringify(message.id)},"result":${message.result.text}}`;
  }
  return JSON.stringify(response);
}
