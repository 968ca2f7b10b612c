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

t.test('tokens are drawn from a refilled random block: each is fresh, whatever the size', async (t) => {
  // 32-byte tokens cross many 4 KB refills; a block reused or wiped before reading would repeat.
  for (const bytes of [1, 16, 24, 32, 100, 512, 513, 4096]) {
    const tokens = Array.from({ length: bytes <= 32 ? 3000 : 300 }, () => randomToken(bytes));
    const length = Math.ceil((bytes * 4) / 3);
    t.ok(tokens.every((token) => token.length === length && /^[A-Za-z0-9_-]+$/.test(token)), `${bytes} bytes: base64url of ${length} characters`);
    if (bytes >= 16) {
      t.equal(new Set(tokens).size, tokens.length, `${bytes} bytes: all distinct`);
      t.notOk(tokens.some((token) => /^A+$/.test(token)), `${bytes} bytes: none all zero`);
    }
  }
  // Bytes are spread evenly: each of the 64 base64url digits of 15-byte tokens (whole base64 groups) appears about as often.
  const counts = new Map<string, number>();
  for (let i = 0; i < 4000; i++) for (const c of randomToken(15)) counts.set(c, (counts.get(c) ?? 0) + 1);
  t.equal(counts.size, 64, 'every digit appears');
  t.ok(Math.min(...counts.values()) > 500 && Math.max(...counts.values()) < 1500, 'no digit far from its expected 1,250');
});

t.test('a byte count that is not a positive integer is refused', async (t) => {
  for (const bytes of [0, -1, 1.5, Number.NaN]) t.throws(() => randomToken(bytes), RangeError, String(bytes));
});
