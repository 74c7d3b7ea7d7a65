/**
 * The checkpoints the log signs, read by a minimal parser written here from the specification texts
 * alone (not from src/), and their signatures checked with node:crypto directly:
 *
 * - C2SP signed-note (https://c2sp.org/signed-note, v1.0.0): "A signed note consists of a text ending
 *   in newline (U+000A), followed by a blank line (only a newline), followed by one or more signature
 *   lines of this form: em dash (U+2014), space (U+0020), key name, space, base64-encoded signature,
 *   newline." "Signatures are the base64 encoding of 4+n bytes. The first four bytes in the signature
 *   are the uint32 key ID stored in big-endian order." "key ID = SHA-256(key name || 0x0A || 0x01 ||
 *   32-byte Ed25519 public key)[:4]".
 * - C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the note text is the origin, the tree
 *   size ("ASCII decimal ... with no leading zeroes"), the root hash ("the base64 encoding of the root
 *   of the RFC 6962 Merkle hash tree"), then optional extension lines; "The log's key name in its
 *   signature line SHOULD match the origin line." Base64 is RFC 4648 §4 (standard, padded).
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { test } from 'node:test';
import { parseCheckpointText } from '../../src/control/audit/checkpoint.ts';
import { AUDIT_ERRORS } from '../../src/control/audit/errors.ts';
import { isRampartError } from '../../src/core/errors.ts';
import { ORIGIN, openTestLog, sampleEvent, scratchDir } from './helpers.ts';

interface SpecNote {
  text: string;
  lines: string[];
  signatures: { name: string; keyId: Buffer; signature: Buffer }[];
}

/** Written from the spec text above, independently of src/control/audit/note.ts. */
function specParse(note: string): SpecNote {
  const bytes = Buffer.from(note, 'utf8');
  for (const b of bytes) assert.ok(b >= 0x20 || b === 0x0a, 'no control characters other than newline');
  const sep = note.lastIndexOf('\n\n');
  assert.ok(sep > 0, 'a blank line separates text and signatures');
  const text = note.slice(0, sep + 1);
  const sigBlock = note.slice(sep + 2);
  assert.ok(sigBlock.endsWith('\n'));
  const signatures = sigBlock
    .slice(0, -1)
    .split('\n')
    .map((line) => {
      assert.equal(line.codePointAt(0), 0x2014, 'em dash');
      assert.equal(line[1], ' ');
      const [name, b64, ...rest] = line.slice(2).split(' ');
      assert.equal(rest.length, 0);
      assert.ok(name && !/[\s+]/u.test(name), 'key name without spaces or plus');
      assert.match(b64!, /^[A-Za-z0-9+/]+={0,2}$/, 'standard base64');
      const raw = Buffer.from(b64!, 'base64');
      return { name: name!, keyId: raw.subarray(0, 4), signature: raw.subarray(4) };
    });
  const lines = text.slice(0, -1).split('\n');
  return { text, lines, signatures };
}

test('a signed checkpoint is exactly origin, size, base64 root, blank line, one Ed25519 signature line', async (t) => {
  const dir = scratchDir(t);
  const log = openTestLog(t, dir);
  const [, publicKeyData] = [log.verifierKey.split('+')[0], log.verifierKey.split('+').slice(2).join('+')];
  for (let i = 0; i < 13; i++) await log.append([sampleEvent(i)]);
  const checkpoint = log.checkpoint();

  const parsed = specParse(checkpoint.note);
  assert.equal(parsed.lines.length, 3, 'no extension lines');
  const [origin, size, root] = parsed.lines as [string, string, string];
  assert.equal(origin, ORIGIN);
  assert.equal(size, '13');
  assert.match(size, /^(0|[1-9][0-9]*)$/);
  assert.equal(root.length, 44);
  assert.deepEqual(Buffer.from(root, 'base64'), checkpoint.root);
  assert.equal(checkpoint.note, `${ORIGIN}\n13\n${root}\n\n— ${ORIGIN} ${checkpoint.note.split(' ').at(-1)}`);

  assert.equal(parsed.signatures.length, 1);
  const [sig] = parsed.signatures as [SpecNote['signatures'][number]];
  assert.equal(sig.name, ORIGIN, 'the key name matches the origin');
  const keyData = Buffer.from(publicKeyData!, 'base64');
  assert.equal(keyData[0], 0x01);
  const publicKey = keyData.subarray(1);
  const keyId = createHash('sha256')
    .update(Buffer.concat([Buffer.from(ORIGIN), Buffer.from([0x0a, 0x01]), publicKey]))
    .digest()
    .subarray(0, 4);
  assert.deepEqual(sig.keyId, keyId);
  assert.equal(sig.signature.length, 64);
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: publicKey.toString('base64url') },
    format: 'jwk',
  });
  assert.equal(verify(null, Buffer.from(parsed.text), key, sig.signature), true);
  assert.equal(verify(null, Buffer.from(parsed.text.replace('13', '14')), key, sig.signature), false);
});

test('the empty tree checkpoints size 0 with the root SHA-256 of nothing', async (t) => {
  const log = openTestLog(t, scratchDir(t));
  const parsed = specParse(log.checkpoint().note);
  assert.deepEqual(parsed.lines, [ORIGIN, '0', '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=']);
});

test('checkpoint text parsing refuses what the spec does not allow', () => {
  const root = Buffer.alloc(32, 7).toString('base64');
  const ok = parseCheckpointText(`o\n5\n${root}\next one\n`);
  assert.deepEqual(ok.extensions, ['ext one']);
  const table: [string, string][] = [
    ['leading zero', `o\n05\n${root}\n`],
    ['plus sign', `o\n+5\n${root}\n`],
    ['negative', `o\n-1\n${root}\n`],
    ['spaces', `o\n 5\n${root}\n`],
    ['beyond 2^53', `o\n9007199254740993\n${root}\n`],
    ['empty origin', `\n5\n${root}\n`],
    ['URL-safe base64', `o\n5\n${Buffer.alloc(32, 0xfb).toString('base64url')}\n`],
    ['unpadded base64', `o\n5\n${root.replace('=', '')}\n`],
    ['31-byte root', `o\n5\n${Buffer.alloc(31).toString('base64')}\n`],
    ['33-byte root', `o\n5\n${Buffer.alloc(33).toString('base64')}\n`],
    ['non-canonical trailing bits', `o\n5\n${root.slice(0, 42)}9=\n`],
    ['empty extension line', `o\n5\n${root}\n\n`],
    ['two lines', 'o\n5\n'],
    ['no final newline', `o\n5\n${root}`],
  ];
  for (const [name, text] of table) {
    assert.throws(
      () => parseCheckpointText(text),
      (err: unknown) => isRampartError(err, AUDIT_ERRORS.note),
      name,
    );
  }
});
