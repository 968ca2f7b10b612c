import t, { type Test } from 'tap';
import { AccessTokens, type AccessTokenClaims } from '../../src/oauth/tokens.js';
import { createOAuthJwtProvider, type OAuthJwtProviderOptions } from '../../src/auth/providers/oauth-jwt.js';
import { InvalidCredentialError, type AuthRequest } from '../../src/auth/types.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { Namespace, SessionRecord, StateStore } from '../../src/store/types.js';

const ISSUER = 'https://gw.example.com';
const AUDIENCE = `${ISSUER}/mcp`;
const SECRET = new TextEncoder().encode('0123456789abcdef0123456789abcdef-test-secret');
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

const claims: AccessTokenClaims = { sub: 'alice', client_id: 'client-1', groups: ['dev', 'oauth-user'], scope: 'mcp  offline_access', sid: 'sid-1' };

function session(overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    sid: 'sid-1', clientId: 'client-1', subject: 'alice', groups: ['dev'], scope: 'mcp', resource: AUDIENCE,
    generation: 1, rotatedAt: T0, createdAt: T0, lastUsedAt: T0, idleExpiresAt: T0 + 86_400_000, absoluteExpiresAt: T0 + 90 * 86_400_000,
    ...overrides,
  };
}

/** A MemoryStore whose reads can be made to fail (store unreachable) and are counted. */
class FlakyStore {
  down = false;
  reads: Array<[Namespace, string]> = [];
  constructor(readonly inner: MemoryStore) {}
  asStore(): StateStore {
    return new Proxy(this.inner, {
      get: (target, prop, receiver) => {
        if (prop === 'get') {
          return async (namespace: Namespace, key: string) => {
            this.reads.push([namespace, key]);
            await new Promise((resolve) => setImmediate(resolve));
            if (this.down) throw new Error('ECONNREFUSED');
            return target.get(namespace, key);
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }
}

async function setup(t: Test, options: Partial<OAuthJwtProviderOptions> = {}) {
  let now = T0;
  const clock = () => now;
  const inner = new MemoryStore();
  t.teardown(() => inner.close());
  await inner.put('clients', 'client-1', { client_id: 'client-1', client_name: 'Test' });
  await inner.put('sessions', 'sid-1', session());
  const flaky = new FlakyStore(inner);
  const tokens = new AccessTokens({ secret: SECRET, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 3600, clock });
  const provider = createOAuthJwtProvider({ tokens, store: flaky.asStore(), clock, ...options });
  const { token } = await tokens.sign(claims);
  const req = (...args: [bearer?: string]): AuthRequest => ({ headers: {}, peerAddress: '127.0.0.1', bearer: args.length > 0 ? args[0] : token });
  return { provider, tokens, store: inner, flaky, token, req, advance: (ms: number) => { now += ms; } };
}

async function rejected(t: Test, promise: Promise<unknown>, reason: RegExp, name: string) {
  try {
    await promise;
    t.fail(`${name}: accepted`);
  } catch (error) {
    t.type(error, InvalidCredentialError, name);
    t.equal((error as InvalidCredentialError).provider, 'oauth_as');
    t.match((error as InvalidCredentialError).reason, reason, `${name}: ${(error as InvalidCredentialError).reason}`);
  }
}

t.test('valid token → identity', async (t) => {
  const { provider, req } = await setup(t, { injectedRoles: ['oauth-user', 'mcp-user'] });
  t.equal(provider.name, 'oauth_as');
  t.ok(provider.recognizes(req()));
  t.same(await provider.authenticate(req()), {
    subject: 'alice',
    roles: ['dev', 'oauth-user', 'mcp-user'], // injected roles already in groups are not added twice
    clientId: 'client-1',
    scopes: ['mcp', 'offline_access'],
    via: 'oauth_as',
  });
});

t.test('recognizes only our tokens', async (t) => {
  const { provider, req } = await setup(t);
  const other = new AccessTokens({ secret: SECRET, issuer: 'https://idp.example.com', audience: AUDIENCE, ttlSeconds: 60 });
  const foreign = (await other.sign(claims)).token;
  t.notOk(provider.recognizes(req(foreign)), 'another issuer');
  t.notOk(provider.recognizes(req(undefined)), 'no bearer');
  t.notOk(provider.recognizes(req('static-token-aaaaaaaa')), 'opaque token');
  t.notOk(provider.recognizes({ headers: { authorization: 'Basic eA==' }, peerAddress: '127.0.0.1' }), 'no bearer, other header');
});

t.test('an invalid token is rejected before any store lookup', async (t) => {
  const { provider, token, req, flaky } = await setup(t);
  const [h, p] = token.split('.');
  await rejected(t, Promise.resolve(provider.authenticate(req(`${h}.${p}.AAAA`))), /signature/, 'tampered');
  await rejected(t, Promise.resolve(provider.authenticate(req(undefined))), /no bearer/, 'missing');
  t.equal(flaky.reads.length, 0);
});

t.test('revoked session: still accepted inside the cache window, rejected after it', async (t) => {
  const { provider, req, store, advance } = await setup(t);
  await provider.authenticate(req());
  await store.delete('sessions', 'sid-1');
  advance(1999);
  t.ok(await provider.authenticate(req()), 'within 2 s the positive answer is reused');
  advance(2);
  await rejected(t, Promise.resolve(provider.authenticate(req())), /session revoked/, 'after the window');
});

t.test('revocationCacheMs is configurable (0 = every request asks the store)', async (t) => {
  const { provider, req, store, flaky } = await setup(t, { revocationCacheMs: 0 });
  await provider.authenticate(req());
  await store.delete('sessions', 'sid-1');
  await rejected(t, Promise.resolve(provider.authenticate(req())), /session revoked/, 'immediately');
  t.equal(flaky.reads.filter(([ns]) => ns === 'sessions').length, 2);
});

t.test('deleted client: rejected after the window', async (t) => {
  const { provider, req, store, advance } = await setup(t);
  await provider.authenticate(req());
  await store.delete('clients', 'client-1');
  advance(2001);
  await rejected(t, Promise.resolve(provider.authenticate(req())), /client no longer registered/, 'deleted client');
});

t.test('a session of another client does not validate the token', async (t) => {
  const { provider, req, store } = await setup(t);
  await store.put('sessions', 'sid-1', session({ clientId: 'client-2' }));
  await rejected(t, Promise.resolve(provider.authenticate(req())), /session revoked/, 'session/client mismatch');
});

t.test('negative answers are cached too', async (t) => {
  const { provider, req, store, advance, flaky } = await setup(t);
  await store.delete('sessions', 'sid-1');
  await rejected(t, Promise.resolve(provider.authenticate(req())), /session revoked/, 'first');
  await store.put('sessions', 'sid-1', session());
  advance(1000);
  await rejected(t, Promise.resolve(provider.authenticate(req())), /session revoked/, 'cached negative');
  t.equal(flaky.reads.filter(([ns]) => ns === 'sessions').length, 1, 'one read');
  advance(1001);
  t.ok(await provider.authenticate(req()), 'after the window the store is asked again');
});

t.test('lookups are cached and shared: one read per session and client per window', async (t) => {
  const { provider, req, flaky, advance } = await setup(t);
  await Promise.all(Array.from({ length: 50 }, () => provider.authenticate(req())));
  for (let i = 0; i < 50; i++) await provider.authenticate(req());
  t.same(flaky.reads.sort(), [['clients', 'client-1'], ['sessions', 'sid-1']]);
  advance(2000);
  await provider.authenticate(req());
  t.equal(flaky.reads.length, 4, 'asked again once the window has passed');
});

t.test('store failure inside the cache window: allowed (confirmed recently)', async (t) => {
  const { provider, req, flaky, advance } = await setup(t);
  await provider.authenticate(req());
  flaky.down = true;
  advance(1500);
  t.ok(await provider.authenticate(req()), 'accepted from the cache while the store is down');
});

t.test('store failure outside the window: fails closed', async (t) => {
  const { provider, req, flaky, advance } = await setup(t);
  await provider.authenticate(req());
  flaky.down = true;
  advance(2500);
  await rejected(t, Promise.resolve(provider.authenticate(req())), /state store unavailable/, 'stale confirmation');
});

t.test('store failure with no confirmation at all: fails closed', async (t) => {
  const { provider, req, flaky } = await setup(t);
  flaky.down = true;
  await rejected(t, Promise.resolve(provider.authenticate(req())), /state store unavailable/, 'never confirmed');
});

t.test('store failure after a negative answer: fails closed', async (t) => {
  const { provider, req, flaky, store, advance } = await setup(t, { outageGraceMs: 60_000 });
  await provider.authenticate(req());
  advance(2000);
  await store.delete('sessions', 'sid-1');
  await rejected(t, Promise.resolve(provider.authenticate(req())), /session revoked/, 'revoked');
  flaky.down = true;
  advance(2000);
  await rejected(t, Promise.resolve(provider.authenticate(req())), /state store unavailable/, 'an older positive answer is not revived');
});

t.test('outageGraceMs extends how long a confirmation survives a store outage', async (t) => {
  const { provider, req, flaky, advance } = await setup(t, { outageGraceMs: 60_000 });
  await provider.authenticate(req());
  flaky.down = true;
  advance(30_000);
  t.ok(await provider.authenticate(req()), '30 s into the outage');
  advance(30_001);
  await rejected(t, Promise.resolve(provider.authenticate(req())), /state store unavailable/, 'beyond the grace');
  flaky.down = false;
  t.ok(await provider.authenticate(req()), 'store back');
});

t.test('expired token is rejected even with a live session', async (t) => {
  const { provider, req, advance } = await setup(t);
  await provider.authenticate(req());
  advance(3600_000 + 30_000);
  await rejected(t, Promise.resolve(provider.authenticate(req())), /expired/, 'expired');
});

t.test('one frozen identity per token; revocation still bites after the cache window', async (t) => {
  const { provider, store, req, advance, flaky } = await setup(t);
  const first = await provider.authenticate(req());
  t.ok(Object.isFrozen(first) && Object.isFrozen(first.roles) && Object.isFrozen(first.scopes), 'frozen, lists too');
  const readsAfterFirst = flaky.reads.length;
  t.equal(await provider.authenticate(req()), first, 'the same identity object on the next request');
  t.equal(flaky.reads.length, readsAfterFirst, 'inside the window: no store read');
  await store.delete('sessions', 'sid-1');
  advance(2001);
  await rejected(t, Promise.resolve(provider.authenticate(req())), /session revoked/, 'a revoked session is refused although its identity was kept');
});
