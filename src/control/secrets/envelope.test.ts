import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isRampartError } from '../../core/errors.ts';
import { type Kek, loadKek } from '../../core/kek.ts';
import {
  dekContext,
  ENVELOPE_FORMAT,
  makeKekCheck,
  openVersion,
  rewrapKey,
  type SealedVersion,
  sealVersion,
  valueAssociatedData,
  verifyKekCheck,
} from './envelope.ts';
import { SEC_ERRORS } from './errors.ts';

const newKek = (): Kek => loadKek({ env: 'K', environment: { K: randomBytes(32).toString('base64') } });
const kek = newKek();
const other = newKek();
const VALUE = Buffer.from('correct horse battery staple');

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(isRampartError(err), `not a RampartError: ${String(err)}`);
    return err.code;
  }
  return 'ok';
}

function flip(bytes: Buffer, index: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[index] = (copy[index] ?? 0) ^ 0x01;
  return copy;
}

describe('envelope: round trip', () => {
  test('a sealed version opens to the same bytes, and the input is not modified', () => {
    const input = Buffer.from(VALUE);
    const sealed = sealVersion(kek, 'db-password', 3, input);
    assert.deepEqual(input, VALUE);
    assert.equal(sealed.kekId, kek.id);
    assert.equal(sealed.format, ENVELOPE_FORMAT);
    assert.equal(sealed.nonce.length, 24);
    assert.equal(sealed.ciphertext.length, VALUE.length + 16);
    assert.deepEqual(openVersion(kek, 'db-password', 3, sealed), VALUE);
  });

  test('every seal has a fresh data key and nonce: the same value twice shares no stored byte string', () => {
    const a = sealVersion(kek, 'k', 1, VALUE);
    const b = sealVersion(kek, 'k', 1, VALUE);
    assert.notDeepEqual(a.nonce, b.nonce);
    assert.notDeepEqual(a.ciphertext, b.ciphertext);
    assert.notDeepEqual(a.wrappedKey, b.wrappedKey);
    // Under one nonce, the same key would give the same ciphertext: so the keys differ too.
    assert.notDeepEqual(a.ciphertext.subarray(0, VALUE.length), VALUE);
  });

  test('the stored parts never contain the plaintext', () => {
    const sealed = sealVersion(kek, 'k', 1, VALUE);
    for (const part of [sealed.wrappedKey, sealed.nonce, sealed.ciphertext]) {
      assert.equal(part.indexOf(VALUE), -1);
    }
  });

  test('property: any value, name and version round-trips', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 2048 }),
        fc.stringMatching(/^[a-z][a-z0-9-]{0,62}$/),
        fc.integer({ min: 1, max: 0x7fffffff }),
        (value, name, version) => {
          const sealed = sealVersion(kek, name, version, value);
          assert.deepEqual(new Uint8Array(openVersion(kek, name, version, sealed)), value);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('envelope: tampering fails, never garbage', () => {
  const sealed = sealVersion(kek, 'api-key', 7, VALUE);
  const open = (s: Partial<SealedVersion>, name = 'api-key', version = 7, key = kek) =>
    codeOf(() => openVersion(key, name, version, { ...sealed, ...s }));

  const table: ReadonlyArray<readonly [string, () => string, string]> = [
    ['untouched', () => open({}), 'ok'],
    ['nonce: first byte', () => open({ nonce: flip(sealed.nonce, 0) }), SEC_ERRORS.decrypt],
    ['nonce: last byte', () => open({ nonce: flip(sealed.nonce, 23) }), SEC_ERRORS.decrypt],
    ['nonce: truncated', () => open({ nonce: sealed.nonce.subarray(0, 23) }), SEC_ERRORS.decrypt],
    ['ciphertext: first byte', () => open({ ciphertext: flip(sealed.ciphertext, 0) }), SEC_ERRORS.decrypt],
    [
      'ciphertext: tag (last byte)',
      () => open({ ciphertext: flip(sealed.ciphertext, sealed.ciphertext.length - 1) }),
      SEC_ERRORS.decrypt,
    ],
    ['ciphertext: one byte cut', () => open({ ciphertext: sealed.ciphertext.subarray(1) }), SEC_ERRORS.decrypt],
    [
      'ciphertext: one byte added',
      () => open({ ciphertext: Buffer.concat([sealed.ciphertext, Buffer.alloc(1)]) }),
      SEC_ERRORS.decrypt,
    ],
    ['ciphertext: only the tag', () => open({ ciphertext: sealed.ciphertext.subarray(-16) }), SEC_ERRORS.decrypt],
    ['ciphertext: empty', () => open({ ciphertext: Buffer.alloc(0) }), SEC_ERRORS.decrypt],
    ['AD: another name', () => open({}, 'api-kez'), SEC_ERRORS.decrypt],
    ['AD: another version', () => open({}, 'api-key', 8), SEC_ERRORS.decrypt],
    ['AD: another format', () => open({ format: 2 }), SEC_ERRORS.decrypt],
    ['wrapped key: version byte', () => open({ wrappedKey: flip(sealed.wrappedKey, 0) }), SEC_ERRORS.decrypt],
    // Bytes 1..16 are the KEK id: another id reads as "another KEK wrapped this" (the store is sealed to it).
    ['wrapped key: KEK id byte', () => open({ wrappedKey: flip(sealed.wrappedKey, 5) }), SEC_ERRORS.sealed],
    ['wrapped key: nonce byte', () => open({ wrappedKey: flip(sealed.wrappedKey, 20) }), SEC_ERRORS.decrypt],
    [
      'wrapped key: ciphertext byte',
      () => open({ wrappedKey: flip(sealed.wrappedKey, sealed.wrappedKey.length - 20) }),
      SEC_ERRORS.decrypt,
    ],
    [
      'wrapped key: tag byte',
      () => open({ wrappedKey: flip(sealed.wrappedKey, sealed.wrappedKey.length - 1) }),
      SEC_ERRORS.decrypt,
    ],
    ['wrapped key: truncated', () => open({ wrappedKey: sealed.wrappedKey.subarray(0, 20) }), SEC_ERRORS.decrypt],
    ['another KEK', () => open({}, 'api-key', 7, other), SEC_ERRORS.sealed],
  ];
  for (const [name, run, expected] of table) {
    test(name, () => assert.equal(run(), expected));
  }

  test('property: flipping any single bit of any stored part fails', () => {
    const parts = ['nonce', 'ciphertext', 'wrappedKey'] as const;
    fc.assert(
      fc.property(fc.constantFrom(...parts), fc.nat(), fc.integer({ min: 0, max: 7 }), (part, at, bit) => {
        const bytes = Buffer.from(sealed[part]);
        const index = at % bytes.length;
        bytes[index] = (bytes[index] ?? 0) ^ (1 << bit);
        assert.notEqual(open({ [part]: bytes }), 'ok');
      }),
      { numRuns: 500 },
    );
  });

  test("a whole row copied onto another secret's row, or another version's, fails", () => {
    const a = sealVersion(kek, 'alpha', 1, Buffer.from('alpha value'));
    const b = sealVersion(kek, 'beta', 1, Buffer.from('beta value'));
    assert.equal(
      codeOf(() => openVersion(kek, 'beta', 1, a)),
      SEC_ERRORS.decrypt,
    );
    assert.equal(
      codeOf(() => openVersion(kek, 'alpha', 2, a)),
      SEC_ERRORS.decrypt,
    );
    // The value's ciphertext moved under the other row's own (valid) wrapped key and nonce: fails too.
    assert.equal(
      codeOf(() => openVersion(kek, 'beta', 1, { ...b, ciphertext: a.ciphertext })),
      SEC_ERRORS.decrypt,
    );
    // Only the wrapped data key swapped: the key is bound to its row.
    assert.equal(
      codeOf(() => openVersion(kek, 'beta', 1, { ...b, wrappedKey: a.wrappedKey })),
      SEC_ERRORS.decrypt,
    );
  });
});

describe('envelope: associated data and contexts', () => {
  test('the encoding is injective: names and versions that concatenate alike differ', () => {
    const seen = new Set<string>();
    for (const [name, version] of [
      ['a', 12],
      ['a1', 2],
      ['a-1', 2],
      ['a', 1],
      ['ab', 1],
    ] as const) {
      const hex = valueAssociatedData(name, version).toString('hex');
      assert.ok(!seen.has(hex), `${name}/${version}`);
      seen.add(hex);
    }
    assert.notEqual(dekContext('a', 12), dekContext('a1', 2));
  });

  test('the AD binds format, name and version (known bytes)', () => {
    assert.equal(
      valueAssociatedData('db', 258).toString('hex'),
      `${Buffer.from('rampart/secret-value/v1\0db\0').toString('hex')}00000102`,
    );
  });
});

describe('envelope: KEK check value and re-wrapping', () => {
  test('the check value opens under its KEK only', () => {
    const check = makeKekCheck(kek);
    assert.equal(verifyKekCheck(kek, check), null);
    assert.equal(verifyKekCheck(other, check), 'wrong_key');
    assert.equal(verifyKekCheck(kek, flip(check, check.length - 1)), 'check_failed');
    // A value wrapped under the same KEK for another purpose is not a check value.
    assert.equal(verifyKekCheck(kek, kek.wrap(Buffer.from('x'), 'rampart/other')), 'check_failed');
  });

  test('re-wrapping moves the data key to the new KEK; the ciphertext opens unchanged', () => {
    const sealed = sealVersion(kek, 'k', 2, VALUE);
    const rewrapped = rewrapKey(kek, other, 'k', 2, sealed.wrappedKey);
    assert.deepEqual(openVersion(other, 'k', 2, { ...sealed, wrappedKey: rewrapped }), VALUE);
    assert.equal(
      codeOf(() => openVersion(kek, 'k', 2, { ...sealed, wrappedKey: rewrapped })),
      SEC_ERRORS.sealed,
    );
    assert.throws(() => rewrapKey(kek, other, 'k', 3, sealed.wrappedKey));
  });
});
