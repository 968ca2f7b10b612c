import t from 'tap';
import { digestsEqual, secretDigest } from '../../src/crypto/compare.js';
import { createBearerProvider, looksLikeJwt } from '../../src/auth/providers/bearer.js';
import { InvalidCredentialError, type AuthRequest } from '../../src/auth/types.js';

const config = {
  tokens: {
    'ci-token-aaaaaaaaaaaa': { subject: 'ci', roles: ['admin', 'ci'] },
    'ops-token-bbbbbbbbbbb': { subject: 'ops', roles: ['ops'] },
    'bot-token-ccccccccccc': { subject: 'bot', roles: [] },
  },
};
const req = (bearer?: string): AuthRequest => ({ headers: {}, peerAddress: '127.0.0.1', bearer });
const jwtShaped = (header: unknown) => `${Buffer.from(JSON.stringify(header)).toString('base64url')}.eyJzdWIiOiJ4In0.c2ln`;

t.test('maps each configured token to its subject and roles', async (t) => {
  const provider = createBearerProvider(config);
  t.equal(provider.name, 'bearer');
  t.same(await provider.authenticate(req('ci-token-aaaaaaaaaaaa')), { subject: 'ci', roles: ['admin', 'ci'], via: 'bearer' });
  t.same(await provider.authenticate(req('ops-token-bbbbbbbbbbb')), { subject: 'ops', roles: ['ops'], via: 'bearer' });
  t.same(await provider.authenticate(req('bot-token-ccccccccccc')), { subject: 'bot', roles: [], via: 'bearer' });
});

t.test('the identity is frozen and its roles are not the config array', async (t) => {
  const provider = createBearerProvider(config);
  const identity = await provider.authenticate(req('ci-token-aaaaaaaaaaaa'));
  t.not(identity.roles, config.tokens['ci-token-aaaaaaaaaaaa'].roles, 'a copy of the configured roles');
  t.throws(() => identity.roles.push('root'), TypeError, 'no stage can add a role');
  t.throws(() => {
    (identity as { subject: string }).subject = 'root';
  }, TypeError, 'or change the subject');
  t.same(config.tokens['ci-token-aaaaaaaaaaaa'].roles, ['admin', 'ci']);
  t.equal(await provider.authenticate(req('ci-token-aaaaaaaaaaaa')), identity, 'the same identity for the same token on every request');
});

t.test('unknown, prefix and extended tokens are rejected', async (t) => {
  const provider = createBearerProvider(config);
  for (const token of ['nope', 'ci-token-aaaaaaaaaaa', 'ci-token-aaaaaaaaaaaaX', 'CI-TOKEN-AAAAAAAAAAAA']) {
    t.ok(provider.recognizes(req(token)), `${token} is claimed (opaque)`);
    await t.rejects(async () => provider.authenticate(req(token)), InvalidCredentialError);
  }
  await t.rejects(async () => provider.authenticate(req(undefined)), InvalidCredentialError);
});

t.test('recognizes: opaque tokens and configured tokens, not foreign JWTs', async (t) => {
  const jwtToken = jwtShaped({ alg: 'HS256', typ: 'at+jwt' });
  const provider = createBearerProvider({ tokens: { ...config.tokens, [jwtToken.replace('eyJzdWIiOiJ4In0', 'eyJzdWIiOiJ5In0')]: { subject: 'jwt-shaped-static', roles: [] } } });
  t.notOk(provider.recognizes(req(undefined)), 'no token');
  t.ok(provider.recognizes(req('anything-opaque')));
  t.notOk(provider.recognizes(req(jwtToken)), 'unknown JWT-shaped token falls through');
  const configuredJwtShaped = jwtToken.replace('eyJzdWIiOiJ4In0', 'eyJzdWIiOiJ5In0');
  t.ok(provider.recognizes(req(configuredJwtShaped)), 'a configured token wins even when JWT-shaped');
  t.equal((await provider.authenticate(req(configuredJwtShaped))).subject, 'jwt-shaped-static');
});

t.test('looksLikeJwt', async (t) => {
  t.ok(looksLikeJwt(jwtShaped({ alg: 'RS256' })));
  t.ok(looksLikeJwt(jwtShaped({ alg: 'none' }).replace(/c2ln$/, '')), 'unsecured JWT (empty signature) still goes to the JWT providers');
  t.notOk(looksLikeJwt(jwtShaped({ typ: 'JWT' })), 'header without alg');
  t.notOk(looksLikeJwt(jwtShaped(['alg'])), 'header is an array');
  t.notOk(looksLikeJwt(jwtShaped('alg')), 'header is a string');
  t.notOk(looksLikeJwt('a.b.c'), 'header does not decode to JSON');
  t.notOk(looksLikeJwt('abc'));
  t.notOk(looksLikeJwt(`${jwtShaped({ alg: 'HS256' })}.extra`), 'five-segment JWE-like / four segments');
  t.notOk(looksLikeJwt(jwtShaped({ alg: 'HS256' }).replace('.eyJ', '.e+J')), 'non-base64url payload');
});

t.test('construction refuses empty tokens and subjects', async (t) => {
  t.throws(() => createBearerProvider({ tokens: { '': { subject: 'x', roles: [] } } }), /empty token/);
  t.throws(() => createBearerProvider({ tokens: { abc: { subject: '', roles: [] } } }), /subject/);
  t.doesNotThrow(() => createBearerProvider({ tokens: {} }));
});

t.test('every configured token is compared in constant time, with no early exit', async (t) => {
  const seen: string[] = [];
  const { createBearerProvider: create } = await t.mockImport<typeof import('../../src/auth/providers/bearer.js')>(
    '../../src/auth/providers/bearer.js',
    {
      '../../src/crypto/compare.js': {
        secretDigest,
        digestsEqual: (a: Buffer, b: Buffer) => {
          seen.push(b.toString('hex'));
          return digestsEqual(a, b);
        },
      },
    },
  );
  const digestsOf = (tokens: string[]) => tokens.map((token) => secretDigest(token).toString('hex')).sort();
  const provider = create(config);
  const all = digestsOf(Object.keys(config.tokens));

  await provider.authenticate(req('ci-token-aaaaaaaaaaaa'));
  t.same([...seen].sort(), all, 'first token matched, the rest are still compared');
  seen.length = 0;

  await t.rejects(async () => provider.authenticate(req('unknown')));
  t.same([...seen].sort(), all, 'an unknown token is compared against every configured token');
  seen.length = 0;

  t.equal(provider.recognizes(req(jwtShaped({ alg: 'HS256' }))), false);
  t.same(seen, [], 'no configured token is JWT-shaped: a JWT-shaped token is passed on without comparing');

  const jwtLike = jwtShaped({ alg: 'none' });
  const withJwtShaped = create({ tokens: { ...config.tokens, [jwtLike]: { subject: 'legacy', roles: [] } } });
  seen.length = 0;
  t.equal(withJwtShaped.recognizes(req(jwtShaped({ alg: 'HS256' }))), false);
  t.same([...seen].sort(), digestsOf([...Object.keys(config.tokens), jwtLike]), 'JWT-shaped tokens are checked against every configured token when one could match');
  t.equal(withJwtShaped.recognizes(req(jwtLike)), true, 'a configured JWT-shaped token is recognised');
});
