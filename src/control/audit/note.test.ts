import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { isRampartError } from '../../core/errors.ts';
import { AUDIT_ERRORS } from './errors.ts';
import {
  ed25519KeyId,
  ed25519Signer,
  ed25519Verifier,
  formatVerifierKey,
  openNote,
  parseVerifierKey,
  rawEd25519PublicKey,
  signNote,
} from './note.ts';

/*
 * Known answer: the example of the Go reference implementation of signed notes,
 * golang.org/x/mod/sumdb/note (note.go package documentation, "Example"; also in note_test.go):
 * https://go.googlesource.com/mod/+/refs/heads/master/sumdb/note/note.go
 * Ed25519 (RFC 8032) is deterministic, so signing the same text with the same key must give the
 * published signature line byte for byte.
 */
const GO_SIGNER_KEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const GO_VERIFIER_KEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_NOTE = `${GO_TEXT}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;

/** The private key of the Go example: the signer key's data is 0x01 ‖ the 32-byte Ed25519 seed. */
function goPrivateKey() {
  const data = Buffer.from(GO_SIGNER_KEY.split('+').slice(4).join('+'), 'base64');
  assert.equal(data[0], 0x01);
  // PKCS#8 for Ed25519 is a fixed 16-byte prefix and the seed (RFC 8410 §7).
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), data.subarray(1)]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

const note = (err: unknown) => isRampartError(err, AUDIT_ERRORS.note);

test('known answer: the Go example note is reproduced byte for byte, and its verifier key too', () => {
  const privateKey = goPrivateKey();
  const signer = ed25519Signer('PeterNeumann', privateKey);
  assert.equal(signer.keyId.toString('hex'), 'c74f20a3');
  assert.equal(signNote(GO_TEXT, [signer]), GO_NOTE);
  assert.equal(formatVerifierKey('PeterNeumann', rawEd25519PublicKey(privateKey)), GO_VERIFIER_KEY);
  const opened = openNote(GO_NOTE, [parseVerifierKey(GO_VERIFIER_KEY)]);
  assert.equal(opened.text, GO_TEXT);
  assert.equal(opened.verified.length, 1);
});

test('open: unknown signatures are ignored, a bad known one rejects the note, none known rejects it', () => {
  const go = parseVerifierKey(GO_VERIFIER_KEY);
  const other = generateKeyPairSync('ed25519');
  const otherSigner = ed25519Signer('example.com/other', other.privateKey);
  const both = `${signNote(GO_TEXT, [otherSigner, ed25519Signer('PeterNeumann', goPrivateKey())])}`;
  const opened = openNote(both, [go]);
  assert.equal(opened.verified.length, 1);
  assert.equal(opened.unknown.length, 1);
  assert.throws(() => openNote(signNote(GO_TEXT, [otherSigner]), [go]), note, 'no trusted signature');
  // Same name and key ID as a trusted key but a wrong signature: the whole note is refused.
  const forged = GO_NOTE.replace('x08go/ZJ', 'x08go/ZK');
  assert.throws(() => openNote(forged, [go]), note);
  // A different text under the real signature.
  assert.throws(() => openNote(GO_NOTE.replace('cryptography', 'cryptographY'), [go]), note);
  // Same name, other key: its ID differs, so it is unknown, not a failure.
  const impostor = ed25519Signer('PeterNeumann', generateKeyPairSync('ed25519').privateKey);
  assert.equal(openNote(`${GO_NOTE}${signNote(GO_TEXT, [impostor]).split('\n\n')[1]}`, [go]).unknown.length, 1);
});

test('hostile notes are refused as malformed', () => {
  const go = parseVerifierKey(GO_VERIFIER_KEY);
  const sigLine = GO_NOTE.slice(GO_TEXT.length + 1);
  const table: [string, string | Uint8Array][] = [
    ['no blank line', `${GO_TEXT}${sigLine}`],
    ['no final newline', GO_NOTE.slice(0, -1)],
    ['hyphen instead of em dash', GO_NOTE.replace('—', '-')],
    ['two spaces after the dash', GO_NOTE.replace('— ', '—  ')],
    ['tab in the text', `a\tb\n\n${sigLine}`],
    ['carriage return', GO_NOTE.replace('problem,\n', 'problem,\r\n')],
    ['NUL', `a\u0000\n\n${sigLine}`],
    ['invalid UTF-8', Buffer.concat([Buffer.from([0xc3, 0x28, 0x0a, 0x0a]), Buffer.from(sigLine)])],
    ['base64 without padding', GO_NOTE.replace('JnAM=', 'JnAM')],
    ['URL-safe base64', GO_NOTE.replace('x08go/', 'x08go_')],
    ['signature shorter than a key ID', `${GO_TEXT}\n— PeterNeumann AAAA\n`],
    [
      'key name with a plus',
      `${GO_TEXT}\n— Peter+Neumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`,
    ],
    ['key name with a no-break space', GO_NOTE.replace('PeterNeumann', 'Peter\u00a0Neumann')],
    ['empty signature block', `${GO_TEXT}\n\n`],
    ['too many signatures', `${GO_TEXT}\n${sigLine.repeat(101)}`],
  ];
  for (const [name, value] of table) assert.throws(() => openNote(value, [go]), note, name);
});

test('verifier keys: a key ID that does not match the name and key, or a wrong algorithm, is refused', () => {
  const bad = (err: unknown) => isRampartError(err, AUDIT_ERRORS.verifierKey);
  const table = [
    ['wrong key ID', GO_VERIFIER_KEY.replace('c74f20a3', 'c74f20a4')],
    ['upper-case key ID', GO_VERIFIER_KEY.replace('c74f20a3', 'C74F20A3')],
    ['other name, same key', GO_VERIFIER_KEY.replace('PeterNeumann', 'PeterNeuman')],
    [
      'algorithm byte 0x02',
      `PeterNeumann+c74f20a3+${Buffer.concat([Buffer.from([2]), Buffer.alloc(32)]).toString('base64')}`,
    ],
    ['31-byte key', `PeterNeumann+c74f20a3+${Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]).toString('base64')}`],
    ['no name', '+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'],
    ['no parts', 'PeterNeumann'],
    ['non-canonical base64', `${GO_VERIFIER_KEY}=`],
  ];
  for (const [name, value] of table) assert.throws(() => parseVerifierKey(value!), bad, name);
  assert.throws(() => ed25519Verifier('a b', Buffer.alloc(32)), bad);
});

test('key ID = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4], and signing refuses text the format cannot carry', () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const raw = rawEd25519PublicKey(privateKey);
  const signer = ed25519Signer('example.com/log', privateKey);
  assert.deepEqual(signer.keyId, ed25519KeyId('example.com/log', raw));
  assert.throws(() => signNote('no newline', [signer]), note);
  assert.throws(() => signNote('bell \u0007\n', [signer]), note);
  assert.throws(() => signNote('text\n', []), note);
  assert.throws(
    () => ed25519Signer('has space', privateKey),
    (err: unknown) => isRampartError(err, AUDIT_ERRORS.config),
  );
  const verifier = ed25519Verifier('example.com/log', raw);
  assert.equal(openNote(signNote('a\n\nb\n', [signer]), [verifier]).text, 'a\n\nb\n', 'text may hold blank lines');
});
