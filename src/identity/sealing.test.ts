import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { inspect } from 'node:util';
import { isRampartError } from '../core/errors.ts';
import { createSealer, openKeyFile } from './sealing.ts';

const dir = mkdtempSync(join(tmpdir(), 'rampart-sealing-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const storeError = (err: unknown) => isRampartError(err, 'IDP_ERR_STORE');

test('sealed values open only with the same key and context, and any altered byte is refused', () => {
  const sealer = createSealer(randomBytes(32));
  const plain = Buffer.from('the secret');
  const sealed = sealer.wrap(plain, 'ctx/a');
  assert.ok(!sealed.includes(plain));
  assert.deepEqual(sealer.unwrap(sealed, 'ctx/a'), plain);
  assert.notDeepEqual(sealer.wrap(plain, 'ctx/a'), sealed, 'fresh nonce each time');
  assert.throws(() => sealer.unwrap(sealed, 'ctx/b'), storeError);
  assert.throws(() => createSealer(randomBytes(32)).unwrap(sealed, 'ctx/a'), storeError);
  for (let i = 0; i < sealed.length; i++) {
    const altered = Buffer.from(sealed);
    altered[i]! ^= 0x01;
    assert.throws(() => sealer.unwrap(altered, 'ctx/a'), storeError, `byte ${i}`);
  }
  assert.throws(() => sealer.unwrap(sealed.subarray(0, 20), 'ctx/a'), storeError);
  assert.throws(() => sealer.wrap(plain, ''), storeError);
  assert.throws(() => sealer.wrap(plain, 'a\0b'), storeError);
  assert.throws(() => createSealer(Buffer.alloc(32)), storeError);
  assert.throws(() => createSealer(Buffer.alloc(16, 1)), storeError);
  assert.equal(inspect(sealer), `Sealer { id: '${sealer.id}' }`);
  assert.deepEqual(JSON.parse(JSON.stringify(sealer)), { kekId: sealer.id });
  sealer.destroy();
  assert.throws(() => sealer.wrap(plain, 'ctx/a'), storeError);
});

test('the key file is created 0600 once, reopened to the same key, and refused when others can read it', () => {
  const path = join(dir, 'kek.key');
  const first = openKeyFile(path);
  assert.equal(first.created, true);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const sealed = first.sealer.wrap(Buffer.from('x'), 'c');
  const again = openKeyFile(path);
  assert.equal(again.created, false);
  assert.equal(again.sealer.id, first.sealer.id);
  assert.deepEqual(again.sealer.unwrap(sealed, 'c'), Buffer.from('x'));
  chmodSync(path, 0o644);
  assert.throws(() => openKeyFile(path), storeError);
  const bad = join(dir, 'bad.key');
  writeFileSync(bad, 'not base64 at all', { mode: 0o600 });
  assert.throws(() => openKeyFile(bad), storeError);
});
