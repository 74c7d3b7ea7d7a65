import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hashRecoveryCode, newRecoveryCodes, normalizeRecoveryCode } from './recovery-codes.ts';
import { currentTotp, matchTotp, newTotpSecret, totpQrSvg, totpSecretText, totpUri } from './totp.ts';

test('RFC 6238 Appendix B known answers (SHA-1, 8 digits truncated to the last 6)', () => {
  // The RFC's SHA-1 seed is the ASCII "12345678901234567890"; its 8-digit values end in these 6 digits.
  const seed = Buffer.from('12345678901234567890');
  const vectors: [number, string][] = [
    [59, '287082'],
    [1111111109, '081804'],
    [1111111111, '050471'],
    [1234567890, '005924'],
    [2000000000, '279037'],
  ];
  for (const [seconds, code] of vectors) {
    assert.equal(currentTotp(seed, seconds * 1000), code);
    assert.equal(matchTotp(seed, code, seconds * 1000), Math.floor(seconds / 30));
  }
});

test('codes match within one step of drift and report the step; anything else is refused', () => {
  const secret = newTotpSecret();
  assert.equal(secret.length, 20);
  const t = 1_700_000_000_000;
  const code = currentTotp(secret, t);
  const step = Math.floor(t / 30_000);
  assert.equal(matchTotp(secret, code, t), step);
  assert.equal(matchTotp(secret, code, t + 30_000), step, 'one step late still names its own step');
  assert.equal(matchTotp(secret, code, t + 90_000), null);
  for (const bad of ['', '12345', '1234567', 'abcdef', ' 123456', `${code} `, '１２３４５６']) {
    assert.equal(matchTotp(secret, bad, t), null, JSON.stringify(bad));
  }
});

test('enrollment URI, text secret and QR code', async () => {
  const secret = Buffer.from('12345678901234567890');
  const uri = totpUri(secret, 'alice', 'Rampart (idp.test)');
  assert.match(uri, /^otpauth:\/\/totp\/Rampart%20\(idp\.test\):alice\?/);
  assert.match(uri, /secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ/);
  assert.match(uri, /algorithm=SHA1&digits=6&period=30/);
  assert.equal(totpSecretText(secret), 'GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ');
  const svg = await totpQrSvg(uri);
  assert.match(svg, /^<svg role="img" aria-label="[^"]+"/);
  assert.doesNotMatch(svg, /<script|on[a-z]+=/i);
});

test('recovery codes: unambiguous alphabet, unique, normalized input, hashes bound to the account', () => {
  const codes = newRecoveryCodes();
  assert.equal(codes.length, 10);
  assert.equal(new Set(codes).size, 10);
  for (const c of codes) assert.match(c, /^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$/);
  const c = codes[0]!;
  assert.equal(normalizeRecoveryCode(c.toLowerCase().replace(/-/g, ' ')), c.replace(/-/g, ''));
  assert.equal(normalizeRecoveryCode('0OIL-0000-0000'), null);
  assert.equal(hashRecoveryCode('a', c), hashRecoveryCode('a', c.toLowerCase()));
  assert.notEqual(hashRecoveryCode('a', c), hashRecoveryCode('b', c));
});
