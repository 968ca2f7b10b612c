import { createServer } from 'node:net';
import { Agent, request } from 'undici';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';

/** A free loopback port (the issuer URL must name the port before the gateway starts). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface BrowserIdentity {
  user: string;
  groups?: string[];
  /** Local address to send the authorize request from (to test untrusted peers). */
  localAddress?: string;
  /** Answer on the consent page. */
  decision?: 'allow' | 'deny';
}

/**
 * A headless stand-in for the user's browser behind the trusted proxy: it opens the authorize URL
 * with the identity headers, answers the consent form when one is shown, and returns the redirect.
 */
export async function browse(authorizationUrl: URL | string, identity: BrowserIdentity): Promise<{ status: number; location?: string; body: string }> {
  // undici takes localAddress at the Agent's top level (inside `connect` it is ignored).
  const dispatcher = identity.localAddress ? new Agent({ localAddress: identity.localAddress } as ConstructorParameters<typeof Agent>[0]) : undefined;
  const headers: Record<string, string> = { 'x-forwarded-user': identity.user };
  if (identity.groups) headers['x-forwarded-groups'] = identity.groups.join(',');
  try {
    const first = await request(authorizationUrl, { method: 'GET', headers, dispatcher });
    const body = await first.body.text();
    if (first.statusCode !== 200 || !body.includes('<form')) {
      return { status: first.statusCode, location: first.headers.location as string | undefined, body };
    }
    const fields = new URLSearchParams();
    for (const match of body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
      fields.append(unescape(match[1]!), unescape(match[2]!));
    }
    fields.append('decision', identity.decision ?? 'allow');
    const action = new URL('/oauth/authorize', authorizationUrl);
    const second = await request(action, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
      body: fields.toString(),
      dispatcher,
    });
    const secondBody = await second.body.text();
    return { status: second.statusCode, location: second.headers.location as string | undefined, body: secondBody };
  } finally {
    await dispatcher?.close();
  }
}

function unescape(value: string): string {
  return value.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** An in-memory OAuthClientProvider whose "browser" is `browse` with a fixed identity. */
export class HeadlessOAuthProvider implements OAuthClientProvider {
  client?: OAuthClientInformationMixed;
  savedTokens?: OAuthTokens;
  verifier?: string;
  lastAuthorizationUrl?: URL;
  lastRedirect?: { status: number; location?: string; body: string };
  authorizationCode?: string;

  constructor(
    readonly identity: BrowserIdentity,
    readonly redirect = 'http://127.0.0.1:43210/callback',
    readonly metadata: Partial<OAuthClientMetadata> = {},
  ) {}

  get redirectUrl(): string {
    return this.redirect;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'Gatehouse test client',
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...this.metadata,
    } as OAuthClientMetadata;
  }

  clientInformation() {
    return this.client;
  }

  saveClientInformation(info: OAuthClientInformationMixed) {
    this.client = info;
  }

  tokens() {
    return this.savedTokens;
  }

  saveTokens(tokens: OAuthTokens) {
    this.savedTokens = tokens;
  }

  async redirectToAuthorization(url: URL) {
    this.lastAuthorizationUrl = url;
    this.lastRedirect = await browse(url, this.identity);
    const location = this.lastRedirect.location ? new URL(this.lastRedirect.location) : undefined;
    this.authorizationCode = location?.searchParams.get('code') ?? undefined;
  }

  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }

  codeVerifier() {
    if (!this.verifier) throw new Error('no code verifier saved');
    return this.verifier;
  }
}

/**
 * The whole SDK flow: connect (401 → discovery → registration → authorize in the headless browser →
 * consent), finish with the code, and connect again. Returns the connected client.
 */
export async function connectWithOAuth(mcpUrl: string, provider: HeadlessOAuthProvider): Promise<Client> {
  const first = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  const client = new Client({ name: 'oauth-test', version: '1.0.0' });
  try {
    await client.connect(first);
    return client;
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
  }
  if (!provider.authorizationCode) {
    throw new Error(`authorization did not produce a code: ${provider.lastRedirect?.status} ${provider.lastRedirect?.location ?? provider.lastRedirect?.body.slice(0, 300)}`);
  }
  await first.finishAuth(provider.authorizationCode);
  const second = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  const connected = new Client({ name: 'oauth-test', version: '1.0.0' });
  await connected.connect(second);
  return connected;
}
