import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { AUDIT_ERRORS, auditError } from './errors.ts';

/**
 * C2SP signed notes (https://c2sp.org/signed-note, v1.0.0), Ed25519 only ("implementations SHOULD
 * select only the one(s) required for their design").
 *
 * A signed note is: the text, ending in a newline; a blank line; one or more signature lines
 * `— <key name> <base64(key ID ‖ signature)>\n` (em dash U+2014, spaces U+0020). The whole note is
 * valid UTF-8 with no control characters other than newline. Key names are non-empty, without
 * Unicode spaces or `+`. The key ID is SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)[:4]
 * (0x01: the Ed25519 signature type) and the signature is Ed25519 (RFC 8032) over the text.
 *
 * Verifier keys use the text form of the Go reference implementation (golang.org/x/mod/sumdb/note):
 * `<name>+<key ID as 8 hex digits>+<base64(0x01 ‖ public key)>`.
 */

/** The signature type byte of Ed25519 (signed-note "Signature types"). */
export const ED25519_SIGNATURE_TYPE = 0x01;

/** Verifiers MUST accept at least 16 signatures; more than this many is refused as abuse. */
export const MAX_NOTE_SIGNATURES = 100;
/** A note larger than this is refused unread (a checkpoint is ~200 bytes; PQ signatures reach ~5 kB each). */
export const MAX_NOTE_BYTES = 1_048_576;

const EM_DASH = '\u2014';
const WHITE_SPACE = /\p{White_Space}/u;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the format forbids these characters
const CONTROL_EXCEPT_NEWLINE = /[\u0000-\u0009\u000b-\u001f]/;
const STD_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Something that signs notes under one key. */
export interface NoteSigner {
  readonly name: string;
  /** The 4-byte key ID. */
  readonly keyId: Buffer;
  /** Ed25519 signature over `message`. */
  sign(message: Buffer): Buffer;
}

/** A trusted public key that verifies note signatures. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: Buffer;
  verify(message: Buffer, signature: Buffer): boolean;
}

function noteError(reason: string, detail: Record<string, unknown> = {}): Error {
  return auditError(AUDIT_ERRORS.note, { reason, ...detail });
}

/** True when `name` may be a key name: non-empty, no Unicode space, no `+`, no control character. */
export function isKeyName(name: string): boolean {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    !WHITE_SPACE.test(name) &&
    !name.includes('+') &&
    !CONTROL_EXCEPT_NEWLINE.test(name) &&
    name.isWellFormed()
  );
}

/** key ID = SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte Ed25519 public key)[:4] (signed-note "Ed25519 signatures"). */
export function ed25519KeyId(name: string, publicKey: Uint8Array): Buffer {
  return createHash('sha256')
    .update(Buffer.from(name, 'utf8'))
    .update(Buffer.from([0x0a, ED25519_SIGNATURE_TYPE]))
    .update(publicKey)
    .digest()
    .subarray(0, 4);
}

/** The raw 32-byte public key of an Ed25519 KeyObject (public or private). */
export function rawEd25519PublicKey(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  if (publicKey.asymmetricKeyType !== 'ed25519') throw auditError(AUDIT_ERRORS.config, { reason: 'not_ed25519' });
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.from(jwk.x as string, 'base64url');
}

/** A signer for `name` from an Ed25519 private key. */
export function ed25519Signer(name: string, privateKey: KeyObject): NoteSigner {
  if (!isKeyName(name)) throw auditError(AUDIT_ERRORS.config, { reason: 'key_name' });
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw auditError(AUDIT_ERRORS.config, { reason: 'not_ed25519' });
  }
  const keyId = ed25519KeyId(name, rawEd25519PublicKey(privateKey));
  return Object.freeze({ name, keyId, sign: (message: Buffer) => sign(null, message, privateKey) });
}

/** A verifier for `name` from a raw 32-byte Ed25519 public key. */
export function ed25519Verifier(name: string, publicKey: Uint8Array): NoteVerifier {
  if (!isKeyName(name)) throw auditError(AUDIT_ERRORS.verifierKey, { reason: 'key_name' });
  if (publicKey.length !== 32) throw auditError(AUDIT_ERRORS.verifierKey, { reason: 'key_length' });
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') },
    format: 'jwk',
  });
  const keyId = ed25519KeyId(name, publicKey);
  return Object.freeze({
    name,
    keyId,
    verify: (message: Buffer, signature: Buffer) => signature.length === 64 && verify(null, message, key, signature),
  });
}

/** The verifier key text `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`. */
export function formatVerifierKey(name: string, publicKey: Uint8Array): string {
  const keyId = ed25519KeyId(name, publicKey).toString('hex');
  const data = Buffer.concat([Buffer.from([ED25519_SIGNATURE_TYPE]), publicKey]).toString('base64');
  return `${name}+${keyId}+${data}`;
}

/**
 * Parses a verifier key string. The key ID in it must be the one the name and key give: a typo or a
 * substituted name is refused rather than silently never matching. Throws AUDIT_ERR_VERIFIER_KEY.
 */
export function parseVerifierKey(text: string): NoteVerifier {
  if (typeof text !== 'string') throw auditError(AUDIT_ERRORS.verifierKey, { reason: 'type' });
  const first = text.indexOf('+');
  const second = text.indexOf('+', first + 1);
  if (first <= 0 || second === -1) throw auditError(AUDIT_ERRORS.verifierKey, { reason: 'syntax' });
  const name = text.slice(0, first);
  const idHex = text.slice(first + 1, second);
  const data = text.slice(second + 1);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw auditError(AUDIT_ERRORS.verifierKey, { reason: 'key_id' });
  if (!STD_BASE64.test(data)) throw auditError(AUDIT_ERRORS.verifierKey, { reason: 'base64' });
  const bytes = Buffer.from(data, 'base64');
  if (bytes.toString('base64') !== data) throw auditError(AUDIT_ERRORS.verifierKey, { reason: 'base64' });
  if (bytes.length !== 33 || bytes[0] !== ED25519_SIGNATURE_TYPE) {
    throw auditError(AUDIT_ERRORS.verifierKey, { reason: 'algorithm' });
  }
  const verifier = ed25519Verifier(name, bytes.subarray(1));
  if (verifier.keyId.toString('hex') !== idHex) throw auditError(AUDIT_ERRORS.verifierKey, { reason: 'key_id' });
  return verifier;
}

function checkNoteCharacters(text: string): void {
  if (!text.isWellFormed()) throw noteError('utf8');
  if (CONTROL_EXCEPT_NEWLINE.test(text)) throw noteError('control_character');
}

/**
 * Signs `text` (which must end with a newline and contain no control characters but newlines) with
 * every signer; returns the signed note.
 */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  if (typeof text !== 'string' || !text.endsWith('\n')) throw noteError('text_newline');
  checkNoteCharacters(text);
  if (signers.length === 0) throw noteError('no_signers');
  const message = Buffer.from(text, 'utf8');
  const lines = signers.map((s) => {
    const signature = Buffer.concat([s.keyId, s.sign(message)]).toString('base64');
    return `${EM_DASH} ${s.name} ${signature}\n`;
  });
  return `${text}\n${lines.join('')}`;
}

/** A signature line, parsed. */
export interface NoteSignature {
  name: string;
  keyId: Buffer;
  signature: Buffer;
}

/** What {@link openNote} returns. */
export interface OpenedNote {
  /** The note text, final newline included. */
  text: string;
  /** The signatures that verified against a trusted key. */
  verified: NoteSignature[];
  /** Signatures from keys not among the verifiers (ignored, as the format requires). */
  unknown: NoteSignature[];
}

/** Splits a note into text and parsed signature lines without verifying anything. */
export function parseNote(note: string | Uint8Array): { text: string; signatures: NoteSignature[] } {
  let source: string;
  if (typeof note === 'string') source = note;
  else {
    if (note.length > MAX_NOTE_BYTES) throw noteError('too_large');
    try {
      source = new TextDecoder('utf-8', { fatal: true }).decode(note);
    } catch {
      throw noteError('utf8');
    }
  }
  if (Buffer.byteLength(source, 'utf8') > MAX_NOTE_BYTES) throw noteError('too_large');
  checkNoteCharacters(source);
  // "the text is separated from the signatures by the last empty line in the note"
  const split = source.lastIndexOf('\n\n');
  if (split === -1) throw noteError('no_blank_line');
  const text = source.slice(0, split + 1);
  const block = source.slice(split + 2);
  if (block.length === 0 || !block.endsWith('\n')) throw noteError('signature_newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) throw noteError('too_many_signatures');
  const signatures = lines.map((line) => {
    if (!line.startsWith(`${EM_DASH} `)) throw noteError('signature_line');
    const rest = line.slice(2);
    const space = rest.lastIndexOf(' ');
    if (space <= 0) throw noteError('signature_line');
    const name = rest.slice(0, space);
    const encoded = rest.slice(space + 1);
    if (!isKeyName(name)) throw noteError('key_name');
    if (!STD_BASE64.test(encoded) || encoded.length % 4 !== 0) throw noteError('signature_base64');
    const bytes = Buffer.from(encoded, 'base64');
    if (bytes.length < 5 || bytes.toString('base64') !== encoded) throw noteError('signature_base64');
    return { name, keyId: bytes.subarray(0, 4), signature: bytes.subarray(4) };
  });
  return { text, signatures };
}

/**
 * Opens a signed note: parses it, verifies every signature from a known key (name and key ID both
 * match a verifier), ignores the others. Throws AUDIT_ERR_NOTE when the note is malformed, when a
 * known key's signature fails ("clients SHOULD reject the whole note"), or when no known key signed
 * it ("clients MUST reject the note").
 */
export function openNote(note: string | Uint8Array, verifiers: readonly NoteVerifier[]): OpenedNote {
  const { text, signatures } = parseNote(note);
  const message = Buffer.from(text, 'utf8');
  const verified: NoteSignature[] = [];
  const unknown: NoteSignature[] = [];
  for (const sig of signatures) {
    const key = verifiers.find((v) => v.name === sig.name && v.keyId.equals(sig.keyId));
    if (key === undefined) {
      unknown.push(sig);
      continue;
    }
    if (!key.verify(message, sig.signature)) throw noteError('bad_signature', { keyName: sig.name });
    verified.push(sig);
  }
  if (verified.length === 0) throw noteError('no_trusted_signature');
  return { text, verified, unknown };
}
