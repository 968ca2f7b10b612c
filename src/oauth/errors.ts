/**
 * An OAuth error (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 7009, RFC 8707): the wire code, the HTTP status,
 * a description safe to show the client, and a private detail for the audit log only.
 */
export class OAuthError extends Error {
  constructor(
    readonly code: string,
    readonly description: string,
    readonly status = 400,
    readonly detail?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(`${code}: ${description}`);
    this.name = 'OAuthError';
  }
}

export const invalidRequest = (description: string, detail?: string) => new OAuthError('invalid_request', description, 400, detail);
export const invalidGrant = (description: string, detail?: string) => new OAuthError('invalid_grant', description, 400, detail);
export const invalidClient = (description: string, basic: boolean) =>
  new OAuthError('invalid_client', description, 401, undefined, basic ? { 'www-authenticate': 'Basic realm="gatehouse"' } : {});
