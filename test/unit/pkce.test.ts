import t from 'tap';
import {
  SUPPORTED_CODE_CHALLENGE_METHODS, isValidCodeChallenge, isValidCodeVerifier, s256Challenge, verifyPkceS256,
} from '../../src/oauth/pkce.js';

// RFC 7636 Appendix B.
const VERIFIER = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

t.test('RFC 7636 appendix B vector', async (t) => {
  t.equal(s256Challenge(VERIFIER), CHALLENGE);
  t.ok(verifyPkceS256(VERIFIER, CHALLENGE));
});

t.test('only S256 is supported', async (t) => {
  t.same(SUPPORTED_CODE_CHALLENGE_METHODS, ['S256']);
  t.ok(Object.isFrozen(SUPPORTED_CODE_CHALLENGE_METHODS));
});

t.test('verifyPkceS256 rejections', async (t) => {
  const rows: Array<[string, string, string]> = [
    ['plain: verifier equal to the challenge', CHALLENGE, CHALLENGE],
    ['other verifier', VERIFIER.replace('d', 'e'), CHALLENGE],
    ['verifier with one char less', VERIFIER.slice(0, -1), CHALLENGE],
    ['challenge of another verifier', VERIFIER, s256Challenge('x'.repeat(43))],
    ['challenge with padding', VERIFIER, `${CHALLENGE}=`],
    ['challenge in base64 (not url)', VERIFIER, CHALLENGE.replace('-', '+')],
    ['challenge lowercase', VERIFIER, CHALLENGE.toLowerCase()],
    ['empty verifier', '', CHALLENGE],
    ['empty challenge', VERIFIER, ''],
    ['verifier too short (42)', 'a'.repeat(42), s256Challenge('a'.repeat(42))],
    ['verifier too long (129)', 'a'.repeat(129), s256Challenge('a'.repeat(129))],
    ['verifier with a space', `${'a'.repeat(42)} `, s256Challenge(`${'a'.repeat(42)} `)],
    ['verifier with "+"', `${'a'.repeat(42)}+`, s256Challenge(`${'a'.repeat(42)}+`)],
    ['verifier with non-ASCII', `${'a'.repeat(42)}é`, s256Challenge(`${'a'.repeat(42)}é`)],
  ];
  for (const [name, verifier, challenge] of rows) t.notOk(verifyPkceS256(verifier, challenge), name);
});

t.test('verifier shapes', async (t) => {
  const valid = ['a'.repeat(43), 'Z'.repeat(128), `${'0'.repeat(40)}-._~`, VERIFIER];
  const invalid: unknown[] = ['a'.repeat(42), 'a'.repeat(129), '', `${'a'.repeat(42)}/`, `${'a'.repeat(42)}=`,
    `${'a'.repeat(42)}%`, `${'a'.repeat(42)}\n`, `${'a'.repeat(42)}ä`, undefined, null, 43, ['a'.repeat(43)]];
  for (const v of valid) t.ok(isValidCodeVerifier(v), `valid ${String(v).length} chars`);
  for (const v of invalid) t.notOk(isValidCodeVerifier(v), `invalid ${JSON.stringify(v)}`);
  const boundaries = [43, 128].map((n) => s256Challenge('v'.repeat(n)));
  t.ok(verifyPkceS256('v'.repeat(43), boundaries[0]!), '43 chars verifies');
  t.ok(verifyPkceS256('v'.repeat(128), boundaries[1]!), '128 chars verifies');
});

t.test('challenge shapes', async (t) => {
  t.ok(isValidCodeChallenge(CHALLENGE));
  const invalid: unknown[] = [CHALLENGE.slice(0, 42), `${CHALLENGE}A`, `${CHALLENGE}=`, CHALLENGE.replace('-', '+'),
    CHALLENGE.replace('-', '/'), CHALLENGE.replace('-', '.'), '', undefined, 42];
  for (const c of invalid) t.notOk(isValidCodeChallenge(c), `invalid ${JSON.stringify(c)}`);
});
