import t from 'tap';
import type { IncomingHttpHeaders } from 'node:http';
import { ProviderChain, buildChallenge, extractBearer, type AuthOutcome, type ChallengeOptions } from '../../src/auth/chain.js';
import { createProviders, challengeFor } from '../../src/auth/index.js';
import { createBearerProvider } from '../../src/auth/providers/bearer.js';
import { InvalidCredentialError, type AuthProvider, type AuthRequest } from '../../src/auth/types.js';
import type { ServerAuthConfig } from '../../src/config/types.js';

const RM = 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp';

/** A compact-JWT-shaped string (not signed: the fake JWT provider only looks at the payload). */
function fakeJwt(payload: Record<string, unknown>): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'HS256', typ: 'at+jwt' })}.${enc(payload)}.c2lnbmF0dXJl`;
}
const GOOD_JWT = fakeJwt({ sub: 'alice', groups: ['oauth-user'] });
const BAD_JWT = fakeJwt({ sub: 'mallory', bad: true });

/** Stands in for the `oauth_as` provider the next issue adds: claims JWT-shaped tokens. */
function fakeJwtProvider(name = 'oauth_as'): AuthProvider & { calls: number } {
  const provider = {
    name,
    calls: 0,
    recognizes: (req: AuthRequest) => req.bearer !== undefined && req.bearer.split('.').length === 3,
    async authenticate(req: AuthRequest) {
      provider.calls++;
      const payload = JSON.parse(Buffer.from(req.bearer!.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      if (payload.bad) throw new InvalidCredentialError(name, 'signature verification failed');
      return { subject: String(payload.sub), roles: payload.groups as string[], via: name };
    },
  };
  return provider;
}

/** Records whether the chain ever consulted it; accepts everything it is asked about. */
function spyProvider(name = 'spy'): AuthProvider & { recognizeCalls: number; authCalls: number } {
  const spy = {
    name,
    recognizeCalls: 0,
    authCalls: 0,
    recognizes: () => { spy.recognizeCalls++; return true; },
    authenticate: () => { spy.authCalls++; return { subject: 'spy', roles: [], via: name }; },
  };
  return spy;
}

const bearerConfig = { tokens: { 'ci-token-123': { subject: 'ci', roles: ['admin'] }, 'ops-token-456': { subject: 'ops', roles: ['ops'] } } };

const auth = (token: string): IncomingHttpHeaders => ({ authorization: `Bearer ${token}` });

interface Case {
  name: string;
  providers: () => AuthProvider[];
  challenge?: ChallengeOptions;
  headers: IncomingHttpHeaders;
  peer?: string;
  expect: { ok: true; subject: string; via: string } | { ok: false; error?: 'invalid_token' | 'invalid_request'; www: string; provider?: string; description?: string };
  /** Providers (by index) that must never have been asked to authenticate. */
  untouched?: number[];
}

const cases: Case[] = [
  {
    name: 'no credential → bare challenge, no error param',
    providers: () => [createBearerProvider(bearerConfig), fakeJwtProvider()],
    headers: {},
    expect: { ok: false, www: 'Bearer', description: 'authentication required' },
  },
  {
    name: 'no credential with OAuth configured → resource_metadata and scope, no error',
    providers: () => [createBearerProvider(bearerConfig), fakeJwtProvider()],
    challenge: { resourceMetadataUrl: RM, scopes: ['mcp', 'offline_access'] },
    headers: {},
    expect: { ok: false, www: `Bearer resource_metadata="${RM}", scope="mcp offline_access"` },
  },
  {
    name: 'malformed Authorization (Basic) → invalid_request',
    providers: () => [createBearerProvider(bearerConfig)],
    challenge: { resourceMetadataUrl: RM },
    headers: { authorization: 'Basic YWxpY2U6c2VjcmV0' },
    expect: {
      ok: false,
      error: 'invalid_request',
      www: `Bearer resource_metadata="${RM}", error="invalid_request", error_description="Authorization header must be the Bearer scheme with one token"`,
    },
  },
  {
    name: 'malformed Authorization (empty bearer) → invalid_request',
    providers: () => [createBearerProvider(bearerConfig)],
    headers: { authorization: 'Bearer ' },
    expect: { ok: false, error: 'invalid_request', www: 'Bearer error="invalid_request", error_description="Authorization header must be the Bearer scheme with one token"' },
  },
  {
    name: 'known static bearer token → that identity',
    providers: () => [createBearerProvider(bearerConfig), fakeJwtProvider()],
    headers: auth('ops-token-456'),
    expect: { ok: true, subject: 'ops', via: 'bearer' },
  },
  {
    name: 'scheme is case-insensitive',
    providers: () => [createBearerProvider(bearerConfig)],
    headers: { authorization: 'bEaReR ci-token-123' },
    expect: { ok: true, subject: 'ci', via: 'bearer' },
  },
  {
    name: 'unknown opaque token → 401 invalid_token from bearer, later providers never tried',
    providers: () => [createBearerProvider(bearerConfig), spyProvider()],
    challenge: { resourceMetadataUrl: RM, scopes: ['mcp'] },
    headers: auth('not-a-configured-token'),
    expect: {
      ok: false,
      error: 'invalid_token',
      provider: 'bearer',
      www: `Bearer resource_metadata="${RM}", scope="mcp", error="invalid_token", error_description="token rejected"`,
    },
    untouched: [1],
  },
  {
    name: 'JWT-shaped token falls through bearer to the oauth_as-like provider',
    providers: () => [createBearerProvider(bearerConfig), fakeJwtProvider(), spyProvider()],
    headers: auth(GOOD_JWT),
    expect: { ok: true, subject: 'alice', via: 'oauth_as' },
    untouched: [2],
  },
  {
    name: 'JWT provider rejects → 401 invalid_token, later provider not tried',
    providers: () => [createBearerProvider(bearerConfig), fakeJwtProvider(), spyProvider()],
    challenge: { resourceMetadataUrl: RM },
    headers: auth(BAD_JWT),
    expect: { ok: false, error: 'invalid_token', provider: 'oauth_as', www: `Bearer resource_metadata="${RM}", error="invalid_token", error_description="token rejected"` },
    untouched: [2],
  },
  {
    name: 'JWT-shaped token with no JWT provider configured → token not recognised',
    providers: () => [createBearerProvider(bearerConfig)],
    headers: auth(GOOD_JWT),
    expect: { ok: false, error: 'invalid_token', www: 'Bearer error="invalid_token", error_description="token not recognised"', description: 'token not recognised' },
  },
  {
    name: 'a provider that throws something other than InvalidCredentialError fails closed',
    providers: () => [
      { name: 'jwks', recognizes: () => true, authenticate: () => { throw new Error('JWKS fetch failed'); } },
      spyProvider(),
    ],
    headers: auth(GOOD_JWT),
    expect: { ok: false, error: 'invalid_token', provider: 'jwks', www: 'Bearer error="invalid_token", error_description="token could not be verified"' },
    untouched: [1],
  },
  {
    name: 'order matters: first accepting provider wins (JWT provider before bearer)',
    providers: () => [fakeJwtProvider('jwks'), fakeJwtProvider('oauth_as')],
    headers: auth(GOOD_JWT),
    expect: { ok: true, subject: 'alice', via: 'jwks' },
    untouched: [1],
  },
  {
    name: 'order matters: spy first claims everything',
    providers: () => [spyProvider(), createBearerProvider(bearerConfig)],
    headers: auth('ci-token-123'),
    expect: { ok: true, subject: 'spy', via: 'spy' },
  },
  {
    name: 'none → anonymous, even with an unrelated Basic header',
    providers: () => createProviders({ providers: ['none'] }, {}),
    headers: { authorization: 'Basic Zm9vOmJhcg==' },
    expect: { ok: true, subject: 'anonymous', via: 'none' },
  },
  {
    name: 'none → anonymous without credentials',
    providers: () => createProviders({ providers: ['none'] }, {}),
    headers: {},
    expect: { ok: true, subject: 'anonymous', via: 'none' },
  },
  {
    name: 'createProviders plugs the external oauth_as provider in without chain changes',
    providers: () => createProviders({ providers: ['bearer', 'oauth_as'], bearer: bearerConfig }, { oauth_as: fakeJwtProvider() }),
    headers: auth(GOOD_JWT),
    expect: { ok: true, subject: 'alice', via: 'oauth_as' },
  },
  {
    name: 'forwarded identity from a trusted peer via createProviders',
    providers: () => createProviders({
      providers: ['bearer', 'forwarded'],
      bearer: bearerConfig,
      forwarded: { trustedSourceCidrs: ['10.0.3.0/24'], userHeader: 'X-Forwarded-User', groupsHeader: 'X-Forwarded-Groups' },
    }, {}),
    headers: { 'x-forwarded-user': 'bob', 'x-forwarded-groups': 'dev, ops' },
    peer: '10.0.3.9',
    expect: { ok: true, subject: 'bob', via: 'forwarded' },
  },
  {
    name: 'forwarded header from an untrusted peer is no credential',
    providers: () => createProviders({
      providers: ['forwarded'],
      forwarded: { trustedSourceCidrs: ['10.0.3.0/24'], userHeader: 'x-forwarded-user', groupsHeader: 'x-forwarded-groups' },
    }, {}),
    headers: { 'x-forwarded-user': 'bob', 'x-forwarded-for': '10.0.3.9' },
    peer: '192.0.2.1',
    expect: { ok: false, www: 'Bearer' },
  },
  {
    name: 'challenge values are quoted (" and \\ escaped)',
    providers: () => [createBearerProvider(bearerConfig)],
    challenge: { resourceMetadataUrl: 'https://x.test/a"b\\c', scopes: ['s"1'] },
    headers: {},
    expect: { ok: false, www: 'Bearer resource_metadata="https://x.test/a\\"b\\\\c", scope="s\\"1"' },
  },
];

t.test('ProviderChain contract table', async (t) => {
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const providers = c.providers();
      const chain = new ProviderChain(providers, c.challenge ?? {});
      const outcome: AuthOutcome = await chain.authenticate({ headers: c.headers, peerAddress: c.peer ?? '127.0.0.1' });
      if (c.expect.ok) {
        t.ok(outcome.ok, 'authenticated');
        if (outcome.ok) {
          t.equal(outcome.identity.subject, c.expect.subject);
          t.equal(outcome.identity.via, c.expect.via);
        }
      } else {
        t.notOk(outcome.ok, 'rejected');
        if (!outcome.ok) {
          t.equal(outcome.status, 401);
          t.equal(outcome.wwwAuthenticate, c.expect.www, 'WWW-Authenticate text');
          t.equal(outcome.error, c.expect.error, 'error code');
          t.equal(outcome.provider, c.expect.provider, 'rejecting provider');
          if (c.expect.description) t.equal(outcome.description, c.expect.description);
          t.type(outcome.reason, 'string');
          const token = /^Bearer (.+)$/i.exec(String(c.headers.authorization ?? ''))?.[1];
          if (token) {
            t.notMatch(outcome.description, token, 'description never echoes the token');
            t.notMatch(outcome.wwwAuthenticate, token, 'challenge never echoes the token');
          }
        }
      }
      for (const index of c.untouched ?? []) {
        const p = providers[index] as Partial<{ authCalls: number; calls: number; recognizeCalls: number }>;
        t.equal(p.authCalls ?? p.calls ?? 0, 0, `provider #${index} never asked to authenticate`);
        t.equal(p.recognizeCalls ?? 0, 0, `provider #${index} never consulted`);
      }
    });
  }
});

t.test('the bearer passed in by the caller is replaced by the header value', async (t) => {
  const chain = new ProviderChain([createBearerProvider(bearerConfig)], {});
  const outcome = await chain.authenticate({ headers: {}, peerAddress: '127.0.0.1', bearer: 'ci-token-123' });
  t.notOk(outcome.ok, 'a token that did not come from the Authorization header is not honoured');
});

t.test('extractBearer', async (t) => {
  const table: [IncomingHttpHeaders, { token?: string; compactJws?: boolean; malformed: boolean }][] = [
    [{}, { malformed: false }],
    [{ authorization: 'Bearer abc.def-ghi_~+/=' }, { token: 'abc.def-ghi_~+/=', compactJws: false, malformed: false }],
    [{ authorization: 'bearer  abc' }, { token: 'abc', compactJws: false, malformed: false }],
    [{ authorization: 'Bearer aBc.d-E_f.' }, { token: 'aBc.d-E_f.', compactJws: true, malformed: false }],
    [{ authorization: 'BEARER eyJh.eyJz.c2ln' }, { token: 'eyJh.eyJz.c2ln', compactJws: true, malformed: false }],
    [{ authorization: 'Bearer a.b.c.d' }, { token: 'a.b.c.d', compactJws: false, malformed: false }],
    [{ authorization: 'Bearer a.b' }, { token: 'a.b', compactJws: false, malformed: false }],
    [{ authorization: 'Bearer a.b.c=' }, { token: 'a.b.c=', compactJws: false, malformed: false }],
    [{ authorization: 'Bearer .b.c' }, { token: '.b.c', compactJws: false, malformed: false }],
    [{ authorization: 'Bearer a.b+c.d' }, { token: 'a.b+c.d', compactJws: false, malformed: false }],
    [{ authorization: 'Bearer' }, { malformed: true }],
    [{ authorization: 'Bearer ' }, { malformed: true }],
    [{ authorization: 'Bearer a b' }, { malformed: true }],
    [{ authorization: 'Basic abc' }, { malformed: true }],
    [{ authorization: 'Bearerabc' }, { malformed: true }],
    [{ authorization: '' }, { malformed: true }],
    [{ authorization: ['Bearer a', 'Bearer b'] as unknown as string }, { malformed: true }],
  ];
  for (const [headers, expected] of table) t.same(extractBearer(headers), expected, JSON.stringify(headers));
  t.same(extractBearer({ host: 'x', 'x-access-token': 'abc' }), { malformed: false }, 'other headers are not credentials');
});

t.test('buildChallenge replaces control characters', async (t) => {
  t.equal(buildChallenge({}, 'invalid_token', 'bad\r\nX-Injected: 1'), 'Bearer error="invalid_token", error_description="bad??X-Injected: 1"');
});

t.test('chain basics', async (t) => {
  t.throws(() => new ProviderChain([], {}), /at least one provider/);
  const chain = new ProviderChain(createProviders({ providers: ['bearer', 'oauth_as'], bearer: bearerConfig }, { oauth_as: fakeJwtProvider() }), {});
  t.same(chain.providerNames, ['bearer', 'oauth_as']);
});

t.test('createProviders', async (t) => {
  t.throws(() => createProviders({ providers: ['bearer', 'oauth_as'], bearer: bearerConfig }, {}), /"oauth_as"/, 'missing implementation names it');
  t.throws(() => createProviders({ providers: ['jwks'] }, {}), /"jwks"/);
  t.throws(() => createProviders({ providers: ['bearer'] }, {}), /serverAuth\.bearer is missing/);
  t.throws(() => createProviders({ providers: ['forwarded'] }, {}), /serverAuth\.forwarded is missing/);
  t.throws(() => createProviders({ providers: ['none', 'bearer'], bearer: bearerConfig }, {}), /"none" cannot be combined/);
  t.throws(() => createProviders({ providers: [] }, {}), /empty/);
  t.throws(() => createProviders({ providers: ['bearer', 'bearer'], bearer: bearerConfig }, {}), /twice/);
  const jwt = fakeJwtProvider('jwks');
  const providers = createProviders({ providers: ['jwks', 'bearer'], bearer: bearerConfig }, { jwks: jwt });
  t.same(providers.map((p) => p.name), ['jwks', 'bearer'], 'configured order');
  t.equal(providers[0], jwt);
});

t.test('challengeFor', async (t) => {
  const oauthAs = { issuerUrl: 'https://mcp.example.com/', scopesSupported: ['mcp'] } as ServerAuthConfig['oauthAs'];
  t.same(challengeFor({ providers: ['bearer', 'oauth_as'], oauthAs }), { resourceMetadataUrl: RM, scopes: ['mcp'] });
  t.same(challengeFor({ providers: ['bearer'], oauthAs }), {}, 'oauthAs block present but not listed');
  t.same(challengeFor({ providers: ['none'] }), {});
  t.same(challengeFor({ providers: ['oauth_as'], oauthAs: { ...oauthAs!, scopesSupported: [] } }), { resourceMetadataUrl: RM });
  t.same(challengeFor({ providers: ['jwks'], jwks: { issuer: 'https://idp', audience: 'x', rolesClaim: 'g', subjectClaim: 'sub' } }), {});
});
