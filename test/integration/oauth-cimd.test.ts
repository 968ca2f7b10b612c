/**
 * Client ID Metadata Documents: an https client_id is fetched from a real HTTPS server (self-signed
 * certificate made with openssl, trusted through `Gateway.start({ cimd: { tls: { ca } } })`) and
 * checked: client_id equal to the URL, no redirects, 5 KB cap, JSON only, no client secret, errors
 * never cached, Cache-Control respected, loopback refused unless allowed.
 */
import t, { type Test } from 'tap';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { HeadlessOAuthProvider } from '../helpers/oauth.js';
import { REDIRECT, USER, authorize, exchange, probeMcp, bearer, refresh, startAsGateway } from '../helpers/oauth-as.js';
import { answer, selfSignedCertificate, startScriptedHttps, type ScriptedHttps } from '../helpers/tls.js';
import { requireSystemBinary } from '../helpers/system.js';

/** See oauth-registration.test.ts: the oauth_as provider finds only stored (DCR) clients. */

if (requireSystemBinary(t, { names: ['openssl'], debianPackage: 'openssl' })) {
  const credentials = selfSignedCertificate(t.testdir());
  const docs: ScriptedHttps = await startScriptedHttps(credentials);
  t.teardown(() => docs.close());
  const gw = await startAsGateway(t, {
    oauthAs: { clientIdMetadataDocuments: { allowPrivateAddresses: true } },
    cimd: { tls: { ca: credentials.cert } },
  });
  const { issuer, mcpUrl } = gw;

  let counter = 0;
  /** A fresh document path (so the cache of one case never serves another) and its URL. */
  const fresh = (name: string) => {
    const path = `/clients/${name}-${++counter}.json`;
    return { path, url: docs.url(path) };
  };
  const documentFor = (url: string, extra: Record<string, unknown> = {}) => ({
    client_id: url,
    client_name: 'CIMD test client',
    client_uri: 'https://example.com',
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    ...extra,
  });

  async function refused(t: Test, url: string, why: RegExp): Promise<void> {
    const auth = await authorize(issuer, url);
    t.equal(auth.status, 400);
    t.equal(auth.location, undefined, 'never redirected');
    t.equal(auth.code, undefined, 'no code');
    t.match(auth.body, why);
  }

  t.test('a valid document: the SDK client completes the whole flow with its URL as client_id', async (t) => {
    const { path, url } = fresh('sdk');
    docs.routes.set(path, answer(documentFor(url)));
    class CimdProvider extends HeadlessOAuthProvider {
      get clientMetadataUrl(): string {
        return url;
      }
    }
    const provider = new CimdProvider(USER);
    const first = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    const client = new Client({ name: 'cimd-test', version: '1.0.0' });
    await t.rejects(client.connect(first), /Unauthorized/, 'first connect asks for authorization');
    t.equal(provider.lastAuthorizationUrl?.searchParams.get('client_id'), url, 'the URL is the client_id');
    t.equal(provider.lastRedirect?.status, 302, `redirected with a code ${provider.lastRedirect?.body.slice(0, 300) ?? ''}`);
    t.ok(provider.authorizationCode, 'a code');
    t.ok((docs.hits.get(path) ?? 0) >= 1, 'the document was fetched');
    await first.finishAuth(provider.authorizationCode!);
    t.ok(provider.savedTokens?.access_token, 'tokens');
    t.ok(provider.savedTokens?.refresh_token, 'a refresh token');

    const refreshed = await refresh(issuer, url, provider.savedTokens!.refresh_token!);
    t.equal(refreshed.status, 200, 'the CIMD client refreshes');
    t.equal((await probeMcp(mcpUrl, bearer(provider.savedTokens!.access_token))).status, 200, 'the access token works on /mcp');
    const second = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    const connected = new Client({ name: 'cimd-test', version: '1.0.0' });
    try {
      await connected.connect(second);
      t.ok((await connected.listTools()).tools.length > 0, 'tools listed');
      await connected.close();
    } catch (error) {
      t.fail(`second connect failed: ${(error as Error).message}`);
    }
  });

  t.test('a document whose client_id is not its URL is refused', async (t) => {
    const { path, url } = fresh('mismatch');
    docs.routes.set(path, answer(documentFor(docs.url('/clients/other.json'))));
    await refused(t, url, /client_id does not equal its URL/);
  });

  t.test('a redirect (302) is not followed', async (t) => {
    const { path, url } = fresh('redirecting');
    const target = fresh('target');
    docs.routes.set(target.path, answer(documentFor(url)));
    docs.routes.set(path, (_req, res) => res.writeHead(302, { location: target.url }).end());
    await refused(t, url, /HTTP 302/);
    t.equal(docs.hits.get(target.path) ?? 0, 0, 'the redirect target was never fetched');
  });

  t.test('a document over 5 KB is refused', async (t) => {
    const { path, url } = fresh('large');
    docs.routes.set(path, answer(documentFor(url, { software_statement_padding: 'x'.repeat(6 * 1024) })));
    await refused(t, url, /larger than 5120 bytes/);
  });

  t.test('a document over 5 KB sent chunked without Content-Length is refused', async (t) => {
    const { path, url } = fresh('large-chunked');
    docs.routes.set(path, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const text = JSON.stringify(documentFor(url, { padding: 'y'.repeat(8 * 1024) }));
      for (let i = 0; i < text.length; i += 1000) res.write(text.slice(i, i + 1000));
      res.end();
    });
    await refused(t, url, /larger than/);
  });

  t.test('a document that is not JSON is refused', async (t) => {
    const { path, url } = fresh('html');
    docs.routes.set(path, answer('<html>hello</html>', 200, { 'content-type': 'text/html' }));
    await refused(t, url, /not valid JSON/);
  });

  t.test('a document with a client_secret is refused', async (t) => {
    const { path, url } = fresh('secret');
    docs.routes.set(path, answer(documentFor(url, { client_secret: 'shh' })));
    await refused(t, url, /client secret/);
  });

  t.test('a document asking for a secret-based auth method is refused', async (t) => {
    const { path, url } = fresh('basic');
    docs.routes.set(path, answer(documentFor(url, { token_endpoint_auth_method: 'client_secret_basic' })));
    await refused(t, url, /shared secret/);
  });

  t.test('a document whose redirect URIs are all outside the allowlist is refused', async (t) => {
    const { path, url } = fresh('evil-redirect');
    docs.routes.set(path, answer(documentFor(url, { redirect_uris: ['https://evil.example/callback'] })));
    await refused(t, url, /redirectUriAllowlist/);
  });

  t.test('a redirect_uri the document does not list is an error page', async (t) => {
    const { path, url } = fresh('other-redirect');
    docs.routes.set(path, answer(documentFor(url)));
    const auth = await authorize(issuer, url, { redirectUri: 'http://127.0.0.1:43210/elsewhere' });
    t.equal(auth.status, 400);
    t.equal(auth.location, undefined);
  });

  t.test('an error answer is not cached: once the server is fixed, the next authorization works', async (t) => {
    const { path, url } = fresh('flaky');
    docs.routes.set(path, answer({ error: 'boom' }, 500, { 'cache-control': 'max-age=3600' }));
    await refused(t, url, /HTTP 500/);
    docs.routes.set(path, answer(documentFor(url), 200, { 'cache-control': 'max-age=300' }));
    const auth = await authorize(issuer, url);
    t.equal(auth.status, 302, auth.body.slice(0, 200));
    t.ok(auth.code, 'a code once the document is served');
    t.equal(docs.hits.get(path), 2, 'fetched again after the error');
    const res = await exchange(issuer, url, auth.code!, auth.verifier);
    t.equal(res.status, 200, res.text);
  });

  t.test('an invalid document is not cached either', async (t) => {
    const { path, url } = fresh('invalid-then-valid');
    docs.routes.set(path, answer(documentFor(url, { client_secret: 'x' }), 200, { 'cache-control': 'max-age=3600' }));
    await refused(t, url, /client secret/);
    docs.routes.set(path, answer(documentFor(url)));
    t.ok((await authorize(issuer, url)).code, 'works once fixed');
  });

  t.test('Cache-Control: max-age is respected: one fetch for two authorizations', async (t) => {
    const { path, url } = fresh('cached');
    docs.routes.set(path, answer(documentFor(url), 200, { 'cache-control': 'public, max-age=300' }));
    t.ok((await authorize(issuer, url)).code);
    t.ok((await authorize(issuer, url)).code);
    t.equal(docs.hits.get(path), 1, 'fetched once');
  });

  t.test('Cache-Control: no-store is respected: fetched for each authorization', async (t) => {
    const { path, url } = fresh('uncached');
    docs.routes.set(path, answer(documentFor(url), 200, { 'cache-control': 'no-store' }));
    t.ok((await authorize(issuer, url)).code);
    t.ok((await authorize(issuer, url)).code);
    // The first authorization resolves the client on the GET and again on the consent POST.
    t.equal(docs.hits.get(path), 3, 'fetched on every resolution (GET + consent POST, then GET)');
  });

  t.test('a certificate the gateway does not trust is refused', async (t) => {
    const untrusted = await startAsGateway(t, { oauthAs: { clientIdMetadataDocuments: { allowPrivateAddresses: true } } });
    const { path, url } = fresh('untrusted-cert');
    docs.routes.set(path, answer(documentFor(url)));
    const auth = await authorize(untrusted.issuer, url);
    t.equal(auth.status, 400);
    t.equal(auth.location, undefined);
    t.match(auth.body, /could not fetch/);
  });

  t.test('loopback documents are refused by default (IP literals in several spellings, and localhost)', async (t) => {
    const strict = await startAsGateway(t, { cimd: { tls: { ca: credentials.cert } } });
    for (const host of ['127.0.0.1', 'localhost', '2130706433', '[::ffff:127.0.0.1]', '[::1]']) {
      const { path } = fresh(`loopback-${host}`);
      const url = `https://${host}:${docs.port}${path}`;
      docs.routes.set(path, answer(documentFor(url)));
      const auth = await authorize(strict.issuer, url);
      t.equal(auth.status, 400, host);
      t.equal(auth.location, undefined, `${host}: never redirected`);
      t.equal(auth.code, undefined, `${host}: no code`);
      t.equal(docs.hits.get(path) ?? 0, 0, `${host}: the document was never fetched`);
    }
  });

  t.test('http:// and malformed URL client_ids are not metadata documents', async (t) => {
    for (const clientId of [`http://127.0.0.1:${docs.port}/clients/x.json`, `https://127.0.0.1:${docs.port}/`, `https://127.0.0.1:${docs.port}/a/../b.json`, `https://user@127.0.0.1:${docs.port}/c.json`]) {
      const auth = await authorize(issuer, clientId);
      t.equal(auth.location, undefined, clientId);
      t.equal(auth.code, undefined);
      t.ok(auth.status === 400, `${clientId}: ${auth.status}`);
    }
  });
}
