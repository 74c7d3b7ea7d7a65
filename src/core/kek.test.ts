import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { RampartError } from './errors.ts';
import { createDevKek, KEK_ERRORS, type Kek, loadKek, rewrapSealed } from './kek.ts';

const dir = mkdtempSync(join(tmpdir(), 'rampart-kek-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
function keyFile(content: Buffer | string, mode = 0o600): string {
  const path = join(dir, `key-${counter++}`);
  writeFileSync(path, content, { mode });
  chmodSync(path, mode); // the umask may have narrowed the mode we asked for
  return path;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RampartError, `not a RampartError: ${String(err)}`);
    return err.code;
  }
  return 'ok';
}

const key32 = () => randomBytes(32);

describe('loadKek from a file', () => {
  const table: readonly (readonly [string, () => string, string])[] = [
    ['raw 32 bytes, 0600', () => keyFile(key32()), 'ok'],
    ['raw 32 bytes, 0400', () => keyFile(key32(), 0o400), 'ok'],
    ['base64 + newline', () => keyFile(`${key32().toString('base64')}\n`), 'ok'],
    ['base64 without newline', () => keyFile(key32().toString('base64')), 'ok'],
    ['base64 + CRLF', () => keyFile(`${key32().toString('base64')}\r\n`), 'ok'],
    ['base64url unpadded', () => keyFile(key32().toString('base64url')), 'ok'],
    ['mode 0644', () => keyFile(key32(), 0o644), KEK_ERRORS.fileMode],
    ['mode 0640', () => keyFile(key32(), 0o640), KEK_ERRORS.fileMode],
    ['mode 0604', () => keyFile(key32(), 0o604), KEK_ERRORS.fileMode],
    ['mode 0660', () => keyFile(key32(), 0o660), KEK_ERRORS.fileMode],
    ['mode 0610 (group execute)', () => keyFile(key32(), 0o610), KEK_ERRORS.fileMode],
    ['missing file', () => join(dir, 'nope'), KEK_ERRORS.missing],
    [
      'a directory',
      () => {
        const path = join(dir, `d-${counter++}`);
        mkdirSync(path, { mode: 0o700 });
        return path;
      },
      KEK_ERRORS.fileMode,
    ],
    [
      'a symbolic link to a 0600 key (mounted secrets are links)',
      () => {
        const target = keyFile(key32());
        const link = join(dir, `l-${counter++}`);
        symlinkSync(target, link);
        return link;
      },
      'ok',
    ],
    ['empty file', () => keyFile(Buffer.alloc(0)), KEK_ERRORS.format],
    ['31 raw bytes', () => keyFile(randomBytes(31)), KEK_ERRORS.format],
    ['33 raw bytes', () => keyFile(randomBytes(33)), KEK_ERRORS.format],
    ['base64 of 31 bytes', () => keyFile(randomBytes(31).toString('base64')), KEK_ERRORS.format],
    ['base64 of 33 bytes', () => keyFile(randomBytes(33).toString('base64')), KEK_ERRORS.format],
    ['base64 with a space', () => keyFile(` ${key32().toString('base64')}`), KEK_ERRORS.format],
    ['base64 with two newlines', () => keyFile(`${key32().toString('base64')}\n\n`), KEK_ERRORS.format],
    ['hex of 32 bytes', () => keyFile(key32().toString('hex')), KEK_ERRORS.format],
    ['all-zero key', () => keyFile(Buffer.alloc(32)), KEK_ERRORS.format],
    ['all-zero key in base64', () => keyFile(Buffer.alloc(32).toString('base64')), KEK_ERRORS.format],
    ['oversized file', () => keyFile(randomBytes(4096)), KEK_ERRORS.format],
  ];
  for (const [name, make, expected] of table) {
    test(name, () => {
      const path = make();
      assert.equal(
        codeOf(() => loadKek({ file: path }).destroy()),
        expected,
      );
    });
  }

  test('the same key in raw and base64 form is the same KEK', () => {
    const material = key32();
    const a = loadKek({ file: keyFile(material) });
    const b = loadKek({ file: keyFile(`${material.toString('base64')}\n`) });
    const c = loadKek({ file: keyFile(key32()) });
    assert.equal(a.id, b.id);
    assert.notEqual(a.id, c.id);
    assert.match(a.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(b.unwrap(a.wrap(Buffer.from('x'), 'ctx'), 'ctx'), Buffer.from('x'));
    for (const k of [a, b, c]) k.destroy();
  });
});

describe('loadKek from the environment', () => {
  const material = key32();
  const table: readonly (readonly [string, string | undefined, string])[] = [
    ['base64', material.toString('base64'), 'ok'],
    ['base64url', material.toString('base64url'), 'ok'],
    ['unset', undefined, KEK_ERRORS.missing],
    ['empty', '', KEK_ERRORS.missing],
    ['not base64', '!'.repeat(44), KEK_ERRORS.format],
    ['short', randomBytes(16).toString('base64'), KEK_ERRORS.format],
    ['raw 32 characters', 'a'.repeat(32), KEK_ERRORS.format],
    ['all zeros', Buffer.alloc(32).toString('base64'), KEK_ERRORS.format],
  ];
  for (const [name, value, expected] of table) {
    test(name, () => {
      const environment = value === undefined ? {} : { RAMPART_KEK: value };
      assert.equal(
        codeOf(() => loadKek({ env: 'RAMPART_KEK', environment }).destroy()),
        expected,
      );
    });
  }
});

describe('wrap and unwrap', () => {
  const kek = loadKek({ file: keyFile(key32()) });
  const other = loadKek({ file: keyFile(key32()) });
  after(() => {
    kek.destroy();
    other.destroy();
  });
  const secret = Buffer.from('the CA private key, PKCS#8');
  const context = 'rampart/ca-key/v1/A.1';

  test('round trip; every wrap uses a fresh nonce', () => {
    const a = kek.wrap(secret, context);
    const b = kek.wrap(secret, context);
    assert.notDeepEqual(a, b);
    assert.deepEqual(kek.unwrap(a, context), secret);
    assert.deepEqual(kek.unwrap(b, context), secret);
    assert.ok(!a.includes(secret), 'the plaintext appears in the wrapped value');
    assert.deepEqual(kek.unwrap(kek.wrap(Buffer.alloc(0), context), context), Buffer.alloc(0));
  });

  /** Byte offsets: 0 version, 1..16 KEK id, 17..40 nonce, then ciphertext and the 16-byte tag. */
  const flip = (buf: Buffer, index: number) => {
    const copy = Buffer.from(buf);
    const i = index < 0 ? copy.length + index : index;
    copy[i] = (copy[i] ?? 0) ^ 0x01;
    return copy;
  };
  const sealed = kek.wrap(secret, context);
  const table: readonly (readonly [string, () => unknown, string])[] = [
    [
      'another context (a row copied into another slot)',
      () => kek.unwrap(sealed, 'rampart/ca-key/v1/B.1'),
      KEK_ERRORS.unwrap,
    ],
    ['another KEK', () => other.unwrap(sealed, context), KEK_ERRORS.wrongKey],
    [
      'KEK id relabelled to the other KEK',
      () =>
        other.unwrap(
          Buffer.concat([sealed.subarray(0, 1), Buffer.from(other.id, 'hex'), sealed.subarray(17)]),
          context,
        ),
      KEK_ERRORS.unwrap,
    ],
    ['version byte changed', () => kek.unwrap(flip(sealed, 0), context), KEK_ERRORS.malformed],
    ['KEK id byte flipped', () => kek.unwrap(flip(sealed, 5), context), KEK_ERRORS.wrongKey],
    ['nonce byte flipped', () => kek.unwrap(flip(sealed, 20), context), KEK_ERRORS.unwrap],
    ['ciphertext byte flipped', () => kek.unwrap(flip(sealed, 45), context), KEK_ERRORS.unwrap],
    ['tag byte flipped', () => kek.unwrap(flip(sealed, -1), context), KEK_ERRORS.unwrap],
    ['truncated by one byte', () => kek.unwrap(sealed.subarray(0, -1), context), KEK_ERRORS.unwrap],
    ['truncated to the header', () => kek.unwrap(sealed.subarray(0, 40), context), KEK_ERRORS.malformed],
    ['empty', () => kek.unwrap(Buffer.alloc(0), context), KEK_ERRORS.malformed],
    ['empty context', () => kek.wrap(secret, ''), KEK_ERRORS.context],
    ['context with NUL', () => kek.unwrap(sealed, `${context}\0`), KEK_ERRORS.context],
    ['oversized context', () => kek.wrap(secret, 'x'.repeat(300)), KEK_ERRORS.context],
  ];
  for (const [name, fn, expected] of table) {
    test(name, () => assert.equal(codeOf(fn), expected));
  }

  test('the key never shows in JSON or inspection', () => {
    assert.equal(JSON.stringify({ kek }), `{"kek":{"kekId":"${kek.id}"}}`);
    assert.equal(inspect(kek), `Kek { id: '${kek.id}' }`);
  });

  test('destroy: no use afterwards, idempotent', () => {
    const k: Kek = loadKek({ file: keyFile(key32()) });
    const w = k.wrap(secret, context);
    k.destroy();
    k.destroy();
    assert.equal(
      codeOf(() => k.unwrap(w, context)),
      KEK_ERRORS.destroyed,
    );
    assert.equal(
      codeOf(() => k.wrap(secret, context)),
      KEK_ERRORS.destroyed,
    );
  });
});

describe('createDevKek', () => {
  test('creates a 0600 base64 key file once, then loads the same key', () => {
    const path = join(dir, `dev-${counter++}`);
    const previous = process.umask(0); // a permissive umask must not widen the file
    let first: ReturnType<typeof createDevKek>;
    try {
      first = createDevKek(path);
    } finally {
      process.umask(previous);
    }
    assert.equal(first.created, true);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.match(readFileSync(path, 'latin1'), /^[A-Za-z0-9+/]{43}=\n$/);
    const second = createDevKek(path);
    assert.equal(second.created, false);
    assert.equal(second.kek.id, first.kek.id);
    assert.deepEqual(second.kek.unwrap(first.kek.wrap(Buffer.from('k'), 'c'), 'c'), Buffer.from('k'));
    first.kek.destroy();
    second.kek.destroy();
  });

  test('an existing file with a wide mode is refused, not rewritten', () => {
    const path = keyFile(`${key32().toString('base64')}\n`, 0o644);
    const before = readFileSync(path);
    assert.equal(
      codeOf(() => createDevKek(path)),
      KEK_ERRORS.fileMode,
    );
    assert.deepEqual(readFileSync(path), before);
  });

  test('an unwritable location is KEK_ERR_MISSING', () => {
    assert.equal(
      codeOf(() => createDevKek(join(dir, 'no-such-dir', 'kek'))),
      KEK_ERRORS.missing,
    );
  });
});

describe('rewrapSealed (KEK rotation of one value)', () => {
  const from = loadKek({ file: keyFile(key32()) });
  const to = loadKek({ file: keyFile(key32()) });
  const third = loadKek({ file: keyFile(key32()) });
  after(() => {
    for (const k of [from, to, third]) k.destroy();
  });
  const plaintext = Buffer.from('a data key, 32 bytes of it......');
  const context = 'rampart/secrets/v1/dek/db-password/1';

  test('a value under `from` comes back under `to`, same plaintext, same context only', () => {
    const sealed = from.wrap(plaintext, context);
    const rewrapped = rewrapSealed(from, to, sealed, context);
    assert.ok(rewrapped !== null);
    assert.deepEqual(to.unwrap(rewrapped, context), plaintext);
    assert.equal(
      codeOf(() => from.unwrap(rewrapped, context)),
      KEK_ERRORS.wrongKey,
    );
    assert.equal(
      codeOf(() => to.unwrap(rewrapped, 'rampart/secrets/v1/dek/db-password/2')),
      KEK_ERRORS.unwrap,
    );
  });

  test('a value already under `to` is kept (null): a rerun changes nothing', () => {
    assert.equal(rewrapSealed(from, to, to.wrap(plaintext, context), context), null);
  });

  const refused: readonly (readonly [string, () => Buffer, string, string])[] = [
    ['sealed by a third key', () => third.wrap(plaintext, context), context, KEK_ERRORS.wrongKey],
    ['under `from`, another context', () => from.wrap(plaintext, context), `${context}0`, KEK_ERRORS.unwrap],
    ['under `to`, another context', () => to.wrap(plaintext, context), `${context}0`, KEK_ERRORS.unwrap],
    [
      'under `from`, a ciphertext byte flipped',
      () => {
        const sealed = from.wrap(plaintext, context);
        sealed[sealed.length - 1]! ^= 1;
        return sealed;
      },
      context,
      KEK_ERRORS.unwrap,
    ],
    [
      'under `to`, a ciphertext byte flipped',
      () => {
        const sealed = to.wrap(plaintext, context);
        sealed[sealed.length - 1]! ^= 1;
        return sealed;
      },
      context,
      KEK_ERRORS.unwrap,
    ],
    ['truncated', () => from.wrap(plaintext, context).subarray(0, 20), context, KEK_ERRORS.malformed],
    ['empty', () => Buffer.alloc(0), context, KEK_ERRORS.malformed],
  ];
  for (const [name, make, ctx, code] of refused) {
    test(`refused: ${name} (${code})`, () => {
      assert.equal(
        codeOf(() => rewrapSealed(from, to, make(), ctx)),
        code,
      );
    });
  }
});
