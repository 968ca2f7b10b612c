import t from 'tap';
import { RefreshTokens, newSid } from '../../src/oauth/refresh-token.js';

const SECRET = new TextEncoder().encode('0123456789abcdef0123456789abcdef-test-secret');
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const OTHER = new TextEncoder().encode('another-secret-another-secret-another-secret');

t.test('mint/parse round trip', async (t) => {
  const tokens = new RefreshTokens(SECRET);
  const sid = newSid();
  t.match(sid, /^[A-Za-z0-9_-]{43}$/, 'sid is 256-bit base64url');
  for (const generation of [0, 1, 2, 41, 1_000_000, Number.MAX_SAFE_INTEGER]) {
    const token = tokens.mint(sid, generation);
    t.match(token, /^[A-Za-z0-9_-]{43}\.(0|[1-9][0-9]*)\.[A-Za-z0-9_-]{43}$/, `format, generation ${generation}`);
    t.same(tokens.parse(token), { sid, generation }, `parses, generation ${generation}`);
  }
});

t.test('deterministic: re-deriving a generation gives the same token (grace window)', async (t) => {
  const sid = newSid();
  t.equal(new RefreshTokens(SECRET).mint(sid, 7), new RefreshTokens(SECRET).mint(sid, 7));
  t.not(new RefreshTokens(SECRET).mint(sid, 7), new RefreshTokens(SECRET).mint(sid, 8));
  t.not(new RefreshTokens(SECRET).mint(sid, 7), new RefreshTokens(SECRET).mint(newSid(), 7));
});

t.test('the refresh key is not the JWT secret itself', async (t) => {
  const { createHmac } = await import('node:crypto');
  const sid = newSid();
  const token = new RefreshTokens(SECRET).mint(sid, 1);
  const naive = createHmac('sha256', SECRET).update(`${sid}.1`).digest('base64url');
  t.not(token.split('.')[2], naive);
});

t.test('forged, foreign and malformed tokens parse to undefined', async (t) => {
  const tokens = new RefreshTokens(SECRET);
  const sid = newSid();
  const good = tokens.mint(sid, 3);
  const [s, g, mac] = good.split('.') as [string, string, string];
  const flip = (text: string, at: number) => text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);
  const rows: Array<[string, unknown]> = [
    ['minted with another secret', new RefreshTokens(OTHER).mint(sid, 3)],
    ['MAC of another generation', `${s}.4.${mac}`],
    ['MAC of another sid', `${newSid()}.${g}.${mac}`],
    ['first MAC character flipped', `${s}.${g}.${flip(mac, 0)}`],
    ['last MAC character flipped', `${s}.${g}.${flip(mac, 42)}`],
    ['non-canonical MAC spelling (same bytes, other trailing bits)', `${s}.${g}.${mac.slice(0, 42)}${B64[B64.indexOf(mac[42]!) ^ 1]}`],
    ['MAC truncated', `${s}.${g}.${mac.slice(0, 42)}`],
    ['MAC extended', `${s}.${g}.${mac}A`],
    ['MAC padded', `${s}.${g}.${mac}=`],
    ['MAC in base64 (not url)', `${s}.${g}.${mac.replace(/-/g, '+').replace(/_/g, '/')}${/[-_]/.test(mac) ? '' : '+'}`],
    ['leading zero generation', `${s}.03.${mac}`],
    ['negative generation', `${s}.-3.${mac}`],
    ['generation with a plus sign', `${s}.+3.${mac}`],
    ['fractional generation', `${s}.3.0.${mac}`],
    ['hex generation', `${s}.0x3.${mac}`],
    ['generation beyond 2^53', `${s}.9007199254740993.${mac}`],
    ['empty generation', `${s}..${mac}`],
    ['empty sid', `.${g}.${mac}`],
    ['sid with a forbidden character', `${s.slice(0, 42)}!.${g}.${mac}`],
    ['two parts', `${s}.${g}`],
    ['four parts', `${good}.x`],
    ['whitespace around', ` ${good} `],
    ['trailing newline', `${good}\n`],
    ['empty string', ''],
    ['garbage', 'not-a-refresh-token'],
    ['an access-token-shaped JWT', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl'],
    ['huge', `${s}.${g}.${'A'.repeat(10000)}`],
    ['not a string', 42],
    ['undefined', undefined],
  ];
  const twin = rows.find(([name]) => name.startsWith('non-canonical'))![1] as string;
  t.same(Buffer.from(twin.split('.')[2]!, 'base64url'), Buffer.from(mac, 'base64url'), 'the non-canonical twin decodes to the same MAC bytes');
  for (const [name, value] of rows) t.equal(tokens.parse(value as string), undefined, name);
  t.same(tokens.parse(good), { sid, generation: 3 }, 'the original still parses');
});

t.test('mint refuses bad input; constructor refuses short secrets', async (t) => {
  const tokens = new RefreshTokens(SECRET);
  t.throws(() => tokens.mint('short', 1));
  t.throws(() => tokens.mint('has.a.dot.in.it.xxxxxxxxxx', 1));
  t.throws(() => tokens.mint(newSid(), -1));
  t.throws(() => tokens.mint(newSid(), 1.5));
  t.throws(() => tokens.mint(newSid(), Number.NaN));
  t.throws(() => new RefreshTokens(new Uint8Array(31)));
});
