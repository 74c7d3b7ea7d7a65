import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isRampartError } from '../../src/core/errors.ts';
import { ARGON2_DEFAULTS, PASSWORD_DEFAULTS } from '../../src/identity/defaults.ts';
import { createPasswordHasher } from '../../src/identity/passwords/argon2.ts';
import { createPasswordPolicy, WEAK_PASSWORD_REASONS as R } from '../../src/identity/passwords/policy.ts';
import { render } from './blocklist-generator.ts';

test('the shipped blocklist is exactly the generator’s output, and large enough to matter', () => {
  const shipped = readFileSync(new URL('../../src/identity/passwords/common-passwords.ts', import.meta.url), 'utf8');
  assert.equal(shipped, render());
  assert.ok(shipped.split('\n').length > 3000);
});

test('argon2id hashes are PHC strings at or above OWASP’s minimum, salted, and verify', async () => {
  const hasher = createPasswordHasher();
  assert.ok(ARGON2_DEFAULTS.memory >= 19 * 1024 && ARGON2_DEFAULTS.passes >= 2 && ARGON2_DEFAULTS.parallelism >= 1);
  const a = await hasher.hash('correct battery horse staple!');
  const b = await hasher.hash('correct battery horse staple!');
  assert.match(a, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  assert.notEqual(a, b, 'random salt');
  assert.equal(await hasher.verify(a, 'correct battery horse staple!'), true);
  assert.equal(await hasher.verify(a, 'correct battery horse staple?'), false);
  assert.equal(hasher.needsRehash(a), false);
});

test('no truncation, NFKC normalization, and a tampered or weak stored hash is refused', async () => {
  const hasher = createPasswordHasher();
  const long = 'x'.repeat(200);
  const h = await hasher.hash(long);
  assert.equal(await hasher.verify(h, `${long}y`), false, 'the 201st character counts');
  assert.equal(await hasher.verify(h, long.slice(0, 72)), false, 'no bcrypt-style 72-byte cut');
  const composed = await hasher.hash('caf\u00e9 au lait, s’il vous plaît');
  assert.equal(await hasher.verify(composed, 'cafe\u0301 au lait, s’il vous plaît'), true, 'NFKC: é composed or not');
  for (const bad of [
    '',
    'plaintext',
    h.replace('m=19456', 'm=8'), // too little memory: a tampered row must not make guessing cheap
    h.replace('$argon2id$', '$argon2i$'),
    `${h}$extra`,
  ]) {
    assert.equal(await hasher.verify(bad, long), false, bad);
    assert.equal(hasher.needsRehash(bad), true);
  }
  const weaker = createPasswordHasher({ memory: 8 * 1024, passes: 1 });
  assert.equal(hasher.needsRehash(await weaker.hash('abc')), true);
});

test('password rules: length in code points, blocklist with variants, repetition, sequences, context', () => {
  const policy = createPasswordPolicy();
  const cases: [string, string | null][] = [
    ['a'.repeat(PASSWORD_DEFAULTS.minLength - 1), R.tooShort],
    ['correct horse saddle', null],
    ['x'.repeat(PASSWORD_DEFAULTS.maxLength + 1), R.tooLong],
    ['😀'.repeat(7) + 'é'.repeat(7), R.tooShort], // 14 code points, even though it is 35 UTF-16 units
    ['passwordpassword', R.common],
    ['PasswordPassword', R.common],
    ['P@ssw0rdP@ssw0rd', R.common],
    ['iloveyou12345678', R.common],
    ['!!monkeydragon2024', R.common],
    ['correct horse battery staple', R.common],
    ['qwertyuiopasdfghjkl', R.common],
    ['abcabcabcabcabcabc', R.repetitive],
    ['zzzzzzzzzzzzzzzzzzzz', R.repetitive],
    ['123456789012345678', R.sequential],
    ['zyxwvutsrqponmlkjih', R.sequential],
    ['alice-alice-alice-1', R.context],
    ['rampart1234567890', R.context],
    ['sunset over the bay 42', null],
    ['Tr0ub4dor&3 is long', null],
    ['ünïcödé pässwörd lång', null],
    ['no Composition Rules needed here', null],
  ];
  for (const [password, reason] of cases) {
    assert.equal(policy.reasonFor(password, { username: 'alice' }), reason, password);
  }
  assert.throws(
    () => policy.check('short'),
    (err) => isRampartError(err, 'IDP_ERR_WEAK_PASSWORD') && err.detail?.['reason'] === R.tooShort,
  );
});
