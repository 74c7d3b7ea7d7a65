import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import sodium from 'sodium-native';
import { isRampartError } from '../../core/errors.ts';
import { KEK_ERRORS, type Kek, rewrapSealed } from '../../core/kek.ts';
import type { AuditStore, SigningKeyRow } from './database.ts';
import { AUDIT_ERRORS, auditError } from './errors.ts';
import { ed25519KeyId, ed25519Signer, formatVerifierKey, type NoteSigner, rawEd25519PublicKey } from './note.ts';

/**
 * The log's checkpoint signing key: Ed25519 (node:crypto), generated at the log's first start, its
 * private half stored only wrapped by the key-encryption key (src/core/kek.ts: XChaCha20-Poly1305).
 * The KEK context binds the wrapped key to its key name and note key ID, so a wrapped key copied
 * from another log's row does not unwrap here.
 */

/** The loaded key: a signer for checkpoints and the verifier key text to pin elsewhere. */
export interface LogSigningKey {
  signer: NoteSigner;
  publicKey: Buffer;
  /** `<name>+<key id>+<base64(0x01 ‖ public key)>`: give this to whoever verifies the log. */
  verifierKey: string;
}

/** The KEK context of a wrapped audit signing key. */
export function signingKeyContext(name: string, keyIdHex: string): string {
  return `rampart/audit-signing-key/v1/${keyIdHex}/${name}`;
}

function loaded(name: string, privateKey: KeyObject, publicKey: Buffer): LogSigningKey {
  return { signer: ed25519Signer(name, privateKey), publicKey, verifierKey: formatVerifierKey(name, publicKey) };
}

/**
 * Loads the active signing key of the log, or makes one (inside the caller's transaction) when there
 * is none. Throws AUDIT_ERR_SEALED when the stored key does not unwrap with `kek` or does not match
 * its public key.
 */
export function loadOrCreateSigningKey(store: AuditStore, name: string, kek: Kek, now: number): LogSigningKey {
  const active = store.signingKeys().find((k) => k.state === 'active');
  if (active !== undefined) return unwrapSigningKey(active, name, kek);
  const created = createSigningKey(name, kek, now);
  store.insertSigningKey(created.row);
  return created.key;
}

/** A new key for the log `name`: the row to store (private half wrapped by `kek`) and the loaded key. */
export function createSigningKey(name: string, kek: Kek, now: number): { row: SigningKeyRow; key: LogSigningKey } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = rawEd25519PublicKey(publicKey);
  const keyIdHex = ed25519KeyId(name, raw).toString('hex');
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  let wrapped: Buffer;
  try {
    wrapped = kek.wrap(pkcs8, signingKeyContext(name, keyIdHex));
  } finally {
    sodium.sodium_memzero(pkcs8);
  }
  return {
    row: { name, keyId: keyIdHex, publicKey: raw, wrappedKey: wrapped, state: 'active', createdAt: now },
    key: loaded(name, privateKey, raw),
  };
}

/**
 * Unwraps a stored key of the log `name` with `kek`: AUDIT_ERR_SEALED when it does not unwrap or does
 * not match its public key, AUDIT_ERR_SCHEMA when it belongs to another log name.
 */
export function unwrapSigningKey(row: SigningKeyRow, name: string, kek: Kek): LogSigningKey {
  if (row.name !== name) throw auditError(AUDIT_ERRORS.schema, { reason: 'key_name', stored: row.name });
  if (row.wrappedKey === null) throw auditError(AUDIT_ERRORS.sealed, { reason: 'no_wrapped_key' });
  let pkcs8: Buffer;
  try {
    pkcs8 = kek.unwrap(row.wrappedKey, signingKeyContext(row.name, row.keyId));
  } catch (cause) {
    throw auditError(AUDIT_ERRORS.sealed, { keyId: row.keyId, ...sealedDetail(cause) }, cause);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  } catch (cause) {
    throw auditError(AUDIT_ERRORS.sealed, { keyId: row.keyId, reason: 'pkcs8' }, cause);
  } finally {
    sodium.sodium_memzero(pkcs8);
  }
  const raw = rawEd25519PublicKey(privateKey);
  if (!raw.equals(row.publicKey) || ed25519KeyId(name, raw).toString('hex') !== row.keyId) {
    throw auditError(AUDIT_ERRORS.sealed, { keyId: row.keyId, reason: 'public_key_mismatch' });
  }
  return loaded(name, privateKey, raw);
}

/**
 * What a KEK failure says about the stored key: when another KEK sealed it, that KEK's id and the one
 * in use (an unfinished `rampart kek rotate` leaves stores under two KEKs; the ids say which is where).
 */
function sealedDetail(cause: unknown): Record<string, unknown> {
  if (!isRampartError(cause, KEK_ERRORS.wrongKey)) return {};
  return { reason: 'wrong_key', kekId: cause.detail?.['kekId'], sealedBy: cause.detail?.['sealedBy'] };
}

/** A signing key row's new wrapped key (KEK rotation). */
export interface RewrappedSigningKey {
  name: string;
  keyId: string;
  wrappedKey: Buffer;
}

/**
 * KEK rotation of the log's signing keys (src/control/kek-rotation.ts): the rows whose wrapped key
 * must change, re-wrapped from `from` to `to`; keys `to` already opens are left out (a rotation run
 * again after an interruption finishes the job). The caller writes them in one transaction. Throws
 * AUDIT_ERR_SEALED, before anything is written, when a key opens under neither KEK or was altered.
 */
export function rewrapSigningKeys(
  rows: readonly SigningKeyRow[],
  from: Kek,
  to: Kek,
): { rewrapped: RewrappedSigningKey[]; kept: number } {
  const rewrapped: RewrappedSigningKey[] = [];
  let kept = 0;
  for (const row of rows) {
    if (row.wrappedKey === null) continue;
    let next: Buffer | null;
    try {
      next = rewrapSealed(from, to, row.wrappedKey, signingKeyContext(row.name, row.keyId));
    } catch (cause) {
      throw auditError(AUDIT_ERRORS.sealed, { keyId: row.keyId, ...sealedDetail(cause) }, cause);
    }
    if (next === null) kept++;
    else rewrapped.push({ name: row.name, keyId: row.keyId, wrappedKey: next });
  }
  return { rewrapped, kept };
}
