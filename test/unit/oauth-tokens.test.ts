import t from 'tap';
import { generateKeyPairSync, createHmac } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { AccessTokens, type AccessTokenClaims } from '../../src/oauth/tokens.js';
import { InvalidCredentialError } from '../../src/auth/types.js';

const ISSUER = 'https://gw.example.com';
const AUDIENCE = 'https://gw.example.com/mcp';
const SECRET = new TextEncoder().encode('0123456789abcdef0123456789abcdef-test-secret');
const OTHER_SECRET = new TextEncoder().encode('another-secret-another-secret-another-secret');
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const NOW_S = T0 / 1000;
const TTL = 3600;

const claims: AccessTokenClaims = { sub: 'alice', client_id: 'client-1', groups: ['dev', 'oauth-user'], scope: 'mcp offline_access', sid: 'sid-abcdefghijklmnop' };

function service(clock: () => number = () => T0, secret = SECRET) {
  return new AccessTokens({ secret, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: TTL, clock });
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A payload exactly like ours, with overrides; `undefined` removes a claim. */
function payload(overrides: Record<string, unknown> = {}): JWTPayload {
  const base: Record<string, unknown> = {
    iss: ISSUER, aud: AUDIENCE, sub: 'alice', client_id: 'client-1', groups: ['dev'], scope: 'mcp', sid: 'sid-1',
    iat: NOW_S, nbf: NOW_S, exp: NOW_S + TTL, jti: 'jti-1',
  };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete base[key];
    else base[key] = value;
  }
  return base as JWTPayload;
}

async function hs(p: JWTPayload, header: Record<string, unknown> = { alg: 'HS256', typ: 'at+jwt' }, key: Uint8Array = SECRET) {
  return new SignJWT(p).setProtectedHeader(header as { alg: string }).sign(key);
}

/** Hand-made HMAC JWS (for headers jose would refuse to produce). */
function rawHs(header: unknown, p: unknown, key: Uint8Array | string = SECRET): string {
  const input = `${b64(header)}.${b64(p)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

t.test('sign then verify round-trips every claim', async (t) => {
  const tokens = service();
  const { token, expiresIn, jti } = await tokens.sign(claims);
  t.equal(expiresIn, TTL);
  t.match(jti, /^[A-Za-z0-9_-]{22}$/);
  const [header] = token.split('.');
  t.same(JSON.parse(Buffer.from(header!, 'base64url').toString()), { alg: 'HS256', typ: 'at+jwt' });
  const verified = await tokens.verify(token);
  t.same(verified, {
    ...claims, iss: ISSUER, aud: AUDIENCE, iat: NOW_S, nbf: NOW_S, exp: NOW_S + TTL, jti,
  });
  t.ok(tokens.isOurs(token));
});

t.test('two tokens for the same claims differ (random jti)', async (t) => {
  const tokens = service();
  const a = await tokens.sign(claims);
  const b = await tokens.sign(claims);
  t.not(a.token, b.token);
  t.not(a.jti, b.jti);
});

t.test('constructor refuses short secrets and bad ttl', async (t) => {
  t.throws(() => new AccessTokens({ secret: new Uint8Array(31), issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 60 }));
  t.throws(() => new AccessTokens({ secret: SECRET, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 0 }));
  t.throws(() => new AccessTokens({ secret: SECRET, issuer: '', audience: AUDIENCE, ttlSeconds: 60 }));
});

t.test('adversarial tokens are rejected', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;

  const good = await hs(payload());
  const [gh, gp, gs] = good.split('.') as [string, string, string];

  const rows: Array<{ name: string; token: () => Promise<string> | string; reason?: RegExp }> = [
    { name: 'alg none, empty signature', token: () => `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(payload())}.`, reason: /algorithm|malformed/ },
    { name: 'alg none, original signature kept', token: () => `${b64({ alg: 'none', typ: 'at+jwt' })}.${gp}.${gs}`, reason: /algorithm|malformed/ },
    { name: 'alg "None" spelled differently', token: () => `${b64({ alg: 'None', typ: 'at+jwt' })}.${b64(payload())}.`, reason: /algorithm|malformed/ },
    { name: 'RS256 signed with a private key', token: () => new SignJWT(payload()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' }).sign(privateKey), reason: /algorithm/ },
    { name: 'ES256 signed with a private key', token: () => new SignJWT(payload()).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' }).sign(ec.privateKey), reason: /algorithm/ },
    { name: 'HS/RS confusion: HS256 with an RSA public key (PEM) as HMAC secret', token: () => rawHs({ alg: 'HS256', typ: 'at+jwt' }, payload(), publicPem), reason: /signature/ },
    { name: 'HS384 with our own secret', token: () => hs(payload(), { alg: 'HS384', typ: 'at+jwt' }), reason: /algorithm/ },
    { name: 'HS512 with our own secret', token: () => hs(payload(), { alg: 'HS512', typ: 'at+jwt' }), reason: /algorithm/ },
    { name: 'HS256 signed with another secret', token: () => hs(payload(), undefined, OTHER_SECRET), reason: /signature/ },
    { name: 'tampered payload (groups → admin), signature kept', token: () => `${gh}.${b64(payload({ groups: ['admin'] }))}.${gs}`, reason: /signature/ },
    { name: 'tampered signature', token: () => `${gh}.${gp}.${gs.slice(0, -2)}${gs.endsWith('AA') ? 'BB' : 'AA'}`, reason: /signature/ },
    { name: 'signature stripped', token: () => `${gh}.${gp}.`, reason: /signature|malformed/ },
    { name: 'wrong audience (token for another resource)', token: () => hs(payload({ aud: 'https://other.example.com/mcp' })), reason: /"aud"/ },
    { name: 'audience array without ours', token: () => hs(payload({ aud: ['https://other.example.com/mcp'] })), reason: /"aud"/ },
    { name: 'audience = issuer (not the resource)', token: () => hs(payload({ aud: ISSUER })), reason: /"aud"/ },
    { name: 'wrong issuer', token: () => hs(payload({ iss: 'https://evil.example.com' })), reason: /"iss"/ },
    { name: 'typ JWT', token: () => hs(payload(), { alg: 'HS256', typ: 'JWT' }), reason: /"typ"/ },
    { name: 'typ missing', token: () => hs(payload(), { alg: 'HS256' }), reason: /"typ"/ },
    { name: 'typ id_token+jwt', token: () => hs(payload(), { alg: 'HS256', typ: 'id_token+jwt' }), reason: /"typ"/ },
    { name: 'expired beyond the 30 s skew', token: () => hs(payload({ iat: NOW_S - 3700, nbf: NOW_S - 3700, exp: NOW_S - 30 })), reason: /expired/ },
    { name: 'expired long ago', token: () => hs(payload({ iat: NOW_S - 90000, nbf: NOW_S - 90000, exp: NOW_S - 86400 })), reason: /expired/ },
    { name: 'nbf in the future beyond the skew', token: () => hs(payload({ nbf: NOW_S + 31 })), reason: /not yet valid/ },
    ...['iss', 'aud', 'sub', 'client_id', 'groups', 'scope', 'sid', 'iat', 'nbf', 'exp', 'jti'].map((claim) => ({
      name: `missing claim ${claim}`,
      token: () => hs(payload({ [claim]: undefined })),
      reason: /missing claim|unexpected/,
    })),
    { name: 'groups is a string', token: () => hs(payload({ groups: 'admin' })), reason: /wrong type/ },
    { name: 'groups holds a number', token: () => hs(payload({ groups: ['dev', 1] })), reason: /wrong type/ },
    { name: 'scope is an array', token: () => hs(payload({ scope: ['mcp'] })), reason: /wrong type/ },
    { name: 'sub is empty', token: () => hs(payload({ sub: '' })), reason: /wrong type/ },
    { name: 'client_id is a number', token: () => hs(payload({ client_id: 42 })), reason: /wrong type/ },
    { name: 'sid is null', token: () => hs(payload({ sid: null })), reason: /wrong type|missing/ },
    { name: 'aud is an array containing ours (we only issue strings)', token: () => hs(payload({ aud: [AUDIENCE] })), reason: /wrong type/ },
    { name: 'exp is a string', token: () => rawHs({ alg: 'HS256', typ: 'at+jwt' }, payload({ exp: String(NOW_S + TTL) })) },
    { name: 'crit header with an unknown extension', token: () => rawHs({ alg: 'HS256', typ: 'at+jwt', crit: ['x-evil'], 'x-evil': 1 }, payload()) },
    { name: 'unencoded payload (b64: false)', token: () => rawHs({ alg: 'HS256', typ: 'at+jwt', b64: false, crit: ['b64'] }, payload()) },
    { name: 'payload is not JSON', token: () => { const input = `${b64({ alg: 'HS256', typ: 'at+jwt' })}.${Buffer.from('not json').toString('base64url')}`; return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`; } },
    { name: 'payload is a JSON array', token: () => rawHs({ alg: 'HS256', typ: 'at+jwt' }, [1, 2]) },
    { name: 'empty string', token: () => '' },
    { name: 'garbage', token: () => 'not-a-token' },
    { name: 'two segments', token: () => `${gh}.${gp}` },
    { name: 'four segments', token: () => `${good}.x` },
    { name: 'dots only', token: () => '..' },
    { name: 'non-base64url characters', token: () => `${gh}.${gp}!.${gs}` },
    { name: 'JWE-shaped (five segments)', token: () => 'a.b.c.d.e' },
    { name: 'huge token', token: () => `${gh}.${'A'.repeat(20000)}.${gs}` },
  ];

  for (const row of rows) {
    const token = await row.token();
    const tokens = service();
    try {
      await tokens.verify(token);
      t.fail(`${row.name}: accepted`);
    } catch (error) {
      t.type(error, InvalidCredentialError, row.name);
      const e = error as InvalidCredentialError;
      t.equal(e.provider, 'oauth_as', `${row.name}: provider`);
      if (row.reason) t.match(e.reason, row.reason, `${row.name}: reason "${e.reason}"`);
      if (token.length > 10) {
        t.notOk(e.message.includes(token) || e.reason.includes(token.split('.')[1] || '\u0000'), `${row.name}: reason does not leak the token`);
      }
    }
  }
});

t.test('clock skew: just inside and just outside the 30 s tolerance', async (t) => {
  const exp = NOW_S + TTL;
  const token = await hs(payload({ exp }));
  const rows = [
    { name: 'at exp - 1 s', at: exp - 1, ok: true },
    { name: 'at exp', at: exp, ok: true },
    { name: 'exp + 29 s (inside skew)', at: exp + 29, ok: true },
    { name: 'exp + 30 s (outside skew)', at: exp + 30, ok: false },
    { name: 'exp + 31 s', at: exp + 31, ok: false },
  ];
  for (const row of rows) {
    const tokens = service(() => row.at * 1000);
    if (row.ok) await t.resolves(tokens.verify(token), row.name);
    else await t.rejects(tokens.verify(token), InvalidCredentialError, row.name);
  }

  const nbfToken = await hs(payload({ nbf: NOW_S + 30 }));
  await t.resolves(service().verify(nbfToken), 'nbf 30 s ahead (inside skew)');
  const nbfLater = await hs(payload({ nbf: NOW_S + 31 }));
  await t.rejects(service().verify(nbfLater), InvalidCredentialError, 'nbf 31 s ahead');
  await t.resolves(service(() => (NOW_S + 1) * 1000).verify(nbfLater), 'valid once the clock reaches nbf - 30 s');
});

t.test('a token signed now expires with the injectable clock', async (t) => {
  let now = T0;
  const tokens = service(() => now);
  const { token } = await tokens.sign(claims);
  await tokens.verify(token); // cached
  now = T0 + (TTL + 29) * 1000;
  await t.resolves(tokens.verify(token), 'inside the skew after exp (re-verified, not from cache)');
  now = T0 + (TTL + 30) * 1000;
  await t.rejects(tokens.verify(token), InvalidCredentialError, 'cache never outlives exp');
});

t.test('verified-token cache', async (t) => {
  const tokens = new AccessTokens({ secret: SECRET, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: TTL, clock: () => T0, cacheSize: 3 });
  const signed = await Promise.all([1, 2, 3, 4].map(() => tokens.sign(claims)));
  for (const { token } of signed) await tokens.verify(token);
  t.equal(tokens.cachedCount, 3, 'bounded');
  for (const { token } of signed) t.ok(await tokens.verify(token), 'evicted tokens are verified again');

  const first = await tokens.verify(signed[0]!.token);
  t.throws(() => first.groups.push('admin'), TypeError, 'the cached claims are frozen: no caller can add a group');
  t.throws(() => {
    first.sub = 'mallory';
  }, TypeError, 'nor change the subject');
  const again = await tokens.verify(signed[0]!.token);
  t.equal(again, first, 'a cached token gives back the same claims object');
  t.equal(again.sub, 'alice', 'callers cannot poison the cache');
  t.same(again.groups, claims.groups);

  const [h, p] = signed[1]!.token.split('.');
  await t.rejects(tokens.verify(`${h}.${p}.AAAA`), InvalidCredentialError, 'a tampered twin of a cached token is not served from cache');
  t.equal(tokens.cachedCount, 3, 'failures are not cached');
});

t.test('isOurs is cheap, unverified and never throws', async (t) => {
  const tokens = service();
  const { token } = await tokens.sign(claims);
  const rows: Array<[string, string, boolean]> = [
    ['our token', token, true],
    ['ours but signed with another secret (still "ours": verify rejects it)', await hs(payload(), undefined, OTHER_SECRET), true],
    ['application/at+jwt typ', await hs(payload(), { alg: 'HS256', typ: 'application/at+jwt' }), true],
    ['other issuer', await hs(payload({ iss: 'https://idp.example.com' })), false],
    ['typ JWT', await hs(payload(), { alg: 'HS256', typ: 'JWT' }), false],
    ['no typ', await hs(payload(), { alg: 'HS256' }), false],
    ['alg none', `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(payload())}.`, false],
    ['alg RS256', `${b64({ alg: 'RS256', typ: 'at+jwt' })}.${b64(payload())}.c2ln`, false],
    ['header not JSON', `${Buffer.from('{{').toString('base64url')}.${b64(payload())}.c2ln`, false],
    ['header JSON null', `${b64(null)}.${b64(payload())}.c2ln`, false],
    ['payload not JSON', `${b64({ alg: 'HS256', typ: 'at+jwt' })}.${Buffer.from('x').toString('base64url')}.c2ln`, false],
    ['payload an array', `${b64({ alg: 'HS256', typ: 'at+jwt' })}.${b64([ISSUER])}.c2ln`, false],
    ['opaque static token', 'ci-token-aaaaaaaaaaaa', false],
    ['empty', '', false],
    ['dots', '..', false],
    ['four parts', `${token}.x`, false],
    ['huge', `${token.split('.')[0]}.${'A'.repeat(20000)}.x`, false],
  ];
  for (const [name, value, expected] of rows) t.equal(tokens.isOurs(value), expected, name);
  t.equal(tokens.isOurs(undefined as unknown as string), false, 'undefined');
});
