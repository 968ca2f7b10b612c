import t from 'tap';
import { createForwardedProvider, parseGroups } from '../../src/auth/providers/forwarded.js';
import { InvalidCredentialError, type AuthRequest } from '../../src/auth/types.js';
import type { IncomingHttpHeaders } from 'node:http';

const config = { trustedSourceCidrs: ['10.0.3.0/24', '::1'], userHeader: 'X-Forwarded-User', groupsHeader: 'X-Forwarded-Groups' };
const req = (peerAddress: string, headers: IncomingHttpHeaders): AuthRequest => ({ headers, peerAddress });

t.test('trusted peer with the user header → identity', async (t) => {
  const provider = createForwardedProvider(config);
  t.equal(provider.name, 'forwarded');
  const request = req('10.0.3.7', { 'x-forwarded-user': 'alice@example.com', 'x-forwarded-groups': 'dev,ops' });
  t.ok(provider.recognizes(request));
  t.same(await provider.authenticate(request), { subject: 'alice@example.com', roles: ['dev', 'ops'], via: 'forwarded' });
  t.ok(provider.recognizes(req('::1', { 'x-forwarded-user': 'bob' })), 'IPv6 loopback in the list');
  t.same((await provider.authenticate(req('::1', { 'x-forwarded-user': 'bob' }))).roles, [], 'no groups header → no roles');
});

t.test('untrusted peer: the header is ignored, not a credential', async (t) => {
  const provider = createForwardedProvider(config);
  const request = req('192.0.2.10', { 'x-forwarded-user': 'alice', 'x-forwarded-for': '10.0.3.7' });
  t.notOk(provider.recognizes(request), 'X-Forwarded-For does not make the peer trusted');
  await t.rejects(async () => provider.authenticate(request), InvalidCredentialError, 'authenticate re-checks the peer');
  t.notOk(provider.recognizes(req('', { 'x-forwarded-user': 'alice' })), 'unknown peer address');
});

t.test('IPv4-mapped IPv6 peer matches an IPv4 range', async (t) => {
  const provider = createForwardedProvider(config);
  t.ok(provider.recognizes(req('::ffff:10.0.3.7', { 'x-forwarded-user': 'alice' })));
  t.notOk(provider.recognizes(req('::ffff:10.0.4.7', { 'x-forwarded-user': 'alice' })));
});

t.test('trusted peer without a user header is not recognised', async (t) => {
  const provider = createForwardedProvider(config);
  t.notOk(provider.recognizes(req('10.0.3.7', {})));
  t.notOk(provider.recognizes(req('10.0.3.7', { 'x-forwarded-user': '   ' })), 'blank header');
  t.notOk(provider.recognizes(req('10.0.3.7', { 'x-forwarded-groups': 'admin' })), 'groups alone');
});

t.test('a user header with several values is rejected', async (t) => {
  const provider = createForwardedProvider(config);
  const request = req('10.0.3.7', { 'x-forwarded-user': 'alice, mallory' });
  t.ok(provider.recognizes(request));
  await t.rejects(async () => provider.authenticate(request), { name: 'InvalidCredentialError', message: /several values/ });
});

t.test('user header value is trimmed', async (t) => {
  const provider = createForwardedProvider(config);
  t.equal((await provider.authenticate(req('10.0.3.7', { 'x-forwarded-user': ' alice ' }))).subject, 'alice');
});

t.test('custom header names are matched case-insensitively', async (t) => {
  const provider = createForwardedProvider({ ...config, userHeader: 'X-Auth-Request-User', groupsHeader: 'X-Auth-Request-Groups' });
  const identity = await provider.authenticate(req('10.0.3.1', { 'x-auth-request-user': 'carol', 'x-auth-request-groups': 'a' }));
  t.same(identity, { subject: 'carol', roles: ['a'], via: 'forwarded' });
});

t.test('groups parsing', async (t) => {
  const table: [string | string[] | undefined, string[]][] = [
    [undefined, []],
    ['', []],
    ['admin', ['admin']],
    [' dev , ops ,, ', ['dev', 'ops']],
    ['dev,dev,ops', ['dev', 'ops']],
    [['dev', 'ops, qa'], ['dev', 'ops', 'qa']],
  ];
  for (const [input, expected] of table) t.same(parseGroups(input), expected, JSON.stringify(input));
});

t.test('an empty CIDR list is refused at construction', async (t) => {
  t.throws(() => createForwardedProvider({ ...config, trustedSourceCidrs: [] }), /trustedSourceCidrs/);
  t.throws(() => createForwardedProvider({ ...config, trustedSourceCidrs: ['not-a-cidr'] }), /not a valid/);
});
