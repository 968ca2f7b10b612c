import t from 'tap';
import { randomIdentifier, randomToken } from '../../src/crypto/random.js';

t.test('identifiers operators type never start with "-" (a CLI would take them for an option)', async (t) => {
  const ids = Array.from({ length: 5000 }, () => randomIdentifier(18));
  t.notOk(ids.some((id) => id.startsWith('-')), 'no leading "-"');
  t.ok(ids.every((id) => /^[A-Za-z0-9_][A-Za-z0-9_-]{23}$/.test(id)), 'base64url of 18 bytes');
  t.equal(new Set(ids).size, ids.length, 'distinct');
  // Plain tokens may start with "-" (about 1 in 64): the identifier helper is what prevents it.
  t.ok(Array.from({ length: 5000 }, () => randomToken(18)).some((id) => id.startsWith('-')));
});
