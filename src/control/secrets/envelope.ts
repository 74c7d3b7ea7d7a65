import sodium from 'sodium-native';
import { isRampartError } from '../../core/errors.ts';
import { KEK_ERRORS, type Kek } from '../../core/kek.ts';
import { SEC_ERRORS, secError } from './errors.ts';

/**
 * Envelope encryption of one secret version (DESIGN.md "Secrets"):
 *
 * - a fresh random 256-bit data key (DEK) per version, never reused, never stored in the clear;
 * - the value encrypted under the DEK with XChaCha20-Poly1305 (libsodium's IETF AEAD), a random 192-bit
 *   nonce (random nonces are safe at this size: no counter to keep), and associated data that binds the
 *   format, the secret's name and the version number, so a ciphertext copied onto another row (another
 *   secret, or another version of the same secret) fails authentication;
 * - the DEK wrapped by the key-encryption key (src/core/kek.ts, the same AEAD) with a context naming the
 *   secret, the version and its role (`dek`), so a wrapped key moved between rows does not unwrap either.
 *
 * KEK rotation re-wraps DEKs only: ciphertexts and nonces never change (service.ts rotateKek).
 *
 * Memory: the DEK and every plaintext Buffer this file allocates are zeroed with `sodium_memzero` when
 * done. JavaScript strings cannot be zeroed (they are immutable and the engine may copy them), so the
 * API takes and returns Buffers; callers own the returned plaintext and zero it after use.
 */

/** Format of the stored version (the `format` column); bound into the associated data. */
export const ENVELOPE_FORMAT = 1;

const KEY_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_KEYBYTES;
const NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
const TAG_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES;
const AD_PREFIX = Buffer.from(`rampart/secret-value/v${ENVELOPE_FORMAT}\0`, 'latin1');

/** The encrypted form of one version, as stored (the database never sees anything else). */
export interface SealedVersion {
  /** The DEK wrapped by the KEK (kek.ts format: version, KEK id, nonce, ciphertext, tag). */
  wrappedKey: Buffer;
  /** XChaCha20-Poly1305 nonce of the value, 24 bytes. */
  nonce: Buffer;
  /** The value's ciphertext followed by the 16-byte tag. */
  ciphertext: Buffer;
  /** Id of the KEK that wrapped the DEK (its key check value; safe to store and show). */
  kekId: string;
  format: number;
}

/**
 * Associated data of a value: `rampart/secret-value/v1 NUL <name> NUL <version as uint32 BE>`. The name's
 * alphabet has no NUL and the version is fixed width, so no two (name, version) pairs share an encoding.
 */
export function valueAssociatedData(name: string, version: number): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const ad = Buffer.alloc(AD_PREFIX.length + nameBytes.length + 1 + 4);
  AD_PREFIX.copy(ad, 0);
  nameBytes.copy(ad, AD_PREFIX.length);
  ad[AD_PREFIX.length + nameBytes.length] = 0;
  ad.writeUInt32BE(version, AD_PREFIX.length + nameBytes.length + 1);
  return ad;
}

/** KEK-wrapping context of a version's DEK (names contain only `[a-z0-9-]`, so `/` separates unambiguously). */
export function dekContext(name: string, version: number): string {
  return `rampart/secrets/v${ENVELOPE_FORMAT}/dek/${name}/${version}`;
}

/** KEK-wrapping context of the store's audit HMAC key. */
export const AUDIT_KEY_CONTEXT = 'rampart/secrets/v1/audit-key';
/** KEK-wrapping context of the store's KEK check value. */
export const KEK_CHECK_CONTEXT = 'rampart/secrets/v1/kek-check';
/** The known constant sealed as the KEK check value at initialisation. */
const KEK_CHECK_PLAINTEXT = Buffer.from('rampart secrets store kek check v1', 'latin1');

/**
 * Encrypts `value` as version `version` of `name`. Does not modify or zero `value` (the caller owns it).
 */
export function sealVersion(kek: Kek, name: string, version: number, value: Uint8Array): SealedVersion {
  const dek = Buffer.alloc(KEY_BYTES);
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_keygen(dek);
    const nonce = Buffer.alloc(NONCE_BYTES);
    sodium.randombytes_buf(nonce);
    const message = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    const ciphertext = Buffer.alloc(message.length + TAG_BYTES);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
      ciphertext,
      message,
      valueAssociatedData(name, version),
      null,
      nonce,
      dek,
    );
    const wrappedKey = kek.wrap(dek, dekContext(name, version));
    return { wrappedKey, nonce, ciphertext, kekId: kek.id, format: ENVELOPE_FORMAT };
  } finally {
    sodium.sodium_memzero(dek);
  }
}

/** The stored parts {@link openVersion} needs. */
export interface StoredVersion {
  wrappedKey: Uint8Array;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
  format: number;
}

/**
 * Decrypts version `version` of `name`. Throws SEC_ERR_DECRYPT (never returns garbage) when anything
 * was altered or the row belongs elsewhere, and SEC_ERR_SEALED when another KEK wrapped the data key.
 * The caller owns the returned Buffer and should `sodium_memzero` it after use.
 */
export function openVersion(kek: Kek, name: string, version: number, stored: StoredVersion): Buffer {
  if (
    stored.format !== ENVELOPE_FORMAT ||
    stored.nonce.byteLength !== NONCE_BYTES ||
    stored.ciphertext.byteLength < TAG_BYTES
  ) {
    throw secError(SEC_ERRORS.decrypt, { reason: 'malformed', version, format: stored.format });
  }
  let dek: Buffer;
  try {
    dek = kek.unwrap(stored.wrappedKey, dekContext(name, version));
  } catch (cause) {
    if (isRampartError(cause, KEK_ERRORS.wrongKey))
      throw secError(SEC_ERRORS.sealed, { reason: 'wrong_key', version }, cause);
    throw secError(SEC_ERRORS.decrypt, { reason: 'data_key', version }, cause);
  }
  const value = Buffer.alloc(stored.ciphertext.byteLength - TAG_BYTES);
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      value,
      null,
      asBuffer(stored.ciphertext),
      valueAssociatedData(name, version),
      asBuffer(stored.nonce),
      dek,
    );
    return value;
  } catch (cause) {
    sodium.sodium_memzero(value);
    throw secError(SEC_ERRORS.decrypt, { reason: 'value', version }, cause);
  } finally {
    sodium.sodium_memzero(dek);
  }
}

/**
 * Re-wraps a version's DEK from `from` to `to` (KEK rotation). The DEK is in the clear only inside this
 * call and is zeroed before it returns. Throws what `from.unwrap` throws.
 */
export function rewrapKey(from: Kek, to: Kek, name: string, version: number, wrappedKey: Uint8Array): Buffer {
  const context = dekContext(name, version);
  const dek = from.unwrap(wrappedKey, context);
  try {
    return to.wrap(dek, context);
  } finally {
    sodium.sodium_memzero(dek);
  }
}

/** The KEK check value: the known constant, sealed under `kek` (stored at initialisation). */
export function makeKekCheck(kek: Kek): Buffer {
  return kek.wrap(KEK_CHECK_PLAINTEXT, KEK_CHECK_CONTEXT);
}

/**
 * Whether `kek` is the store's KEK: the check value opens under it and holds the known constant.
 * Returns the reason it is not (`wrong_key`: another KEK's; `check_failed`: altered), or null.
 */
export function verifyKekCheck(kek: Kek, check: Uint8Array): 'wrong_key' | 'check_failed' | null {
  let opened: Buffer;
  try {
    opened = kek.unwrap(check, KEK_CHECK_CONTEXT);
  } catch (cause) {
    return isRampartError(cause, KEK_ERRORS.wrongKey) ? 'wrong_key' : 'check_failed';
  }
  try {
    return opened.length === KEK_CHECK_PLAINTEXT.length && sodium.sodium_memcmp(opened, KEK_CHECK_PLAINTEXT)
      ? null
      : 'check_failed';
  } finally {
    sodium.sodium_memzero(opened);
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
