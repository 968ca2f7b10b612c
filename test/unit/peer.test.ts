import t from 'tap';
import { compileCidrMatcher, normalizePeerAddress, parseCidr } from '../../src/http/peer.js';

t.test('normalizePeerAddress unwraps IPv4-mapped IPv6', async (t) => {
  t.equal(normalizePeerAddress('::ffff:10.0.0.1'), '10.0.0.1');
  t.equal(normalizePeerAddress('::1'), '::1');
  t.equal(normalizePeerAddress('127.0.0.1'), '127.0.0.1');
});

t.test('compileCidrMatcher', async (t) => {
  const trusted = compileCidrMatcher(['10.0.3.0/24', '::1/128', '127.0.0.1']);
  t.ok(trusted('10.0.3.7'));
  t.ok(trusted('::ffff:10.0.3.7'), 'mapped form matches an IPv4 range');
  t.ok(trusted('::1'));
  t.ok(trusted('127.0.0.1'));
  t.notOk(trusted('127.0.0.2'));
  t.notOk(trusted('10.0.4.1'));
  t.notOk(trusted('garbage'));
  t.notOk(trusted(undefined));
  t.notOk(compileCidrMatcher([])('127.0.0.1'), 'empty list trusts nobody');
  t.ok(compileCidrMatcher(['::ffff:10.0.0.0/104'])('10.1.2.3'), 'mapped CIDR covers IPv4 peers');
});

t.test('parseCidr rejects garbage with a clear message', async (t) => {
  t.throws(() => parseCidr('10.0.0.0/33'), /not a valid IP address or CIDR/);
  t.throws(() => parseCidr('example.com'), /not a valid/);
});
