import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { IDP_ERRORS, idpError } from './errors.ts';

/**
 * Sealing of the identity provider's secrets at rest (private signing keys, client secrets, TOTP
 * secrets, cookie keys): AES-256-GCM from node:crypto under a key-encryption key, with associated
 * data naming what is sealed, so a sealed value copied into another row does not open there.
 *
 * Why not src/core/kek.ts: it is built on sodium-native, a native addon, and the launcher runs the
 * identity process under Node's permission model without `--allow-addons` (and sodium-native's loader
 * reads /etc/alpine-release, outside the allowed paths). node:crypto needs neither. The key file
 * format is the same (32 random bytes, base64, mode 0600), and {@link Sealer} has the shape of
 * kek.ts's `Kek`, so the two can converge once addons are allowed.
 *
 * Random 96-bit GCM nonces are safe for far more than the few hundred values a provider seals (the
 * NIST SP 800-38D bound for random nonces is 2^32 messages per key).
 */
export interface Sealer {
  /** Key check value (hex): names the key without revealing it; safe to log. */
  readonly id: string;
  wrap(plaintext: Uint8Array, context: string): Buffer;
  /** Throws IDP_ERR_STORE when the value was altered, sealed under another key or another context. */
  unwrap(sealed: Uint8Array, context: string): Buffer;
  destroy(): void;
}

const VERSION = 0x47; // 'G': AES-256-GCM, format 1
const KEY_BYTES = 32;
const ID_BYTES = 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + ID_BYTES;
const MAX_KEY_FILE_BYTES = 128;
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/;

function sealError(message: string, detail?: Record<string, unknown>, cause?: unknown): never {
  throw idpError(IDP_ERRORS.store, message, { status: 500, ...(detail ? { detail } : {}), cause });
}

function contextBytes(context: string): Buffer {
  const bytes = Buffer.from(context, 'utf8');
  if (bytes.length === 0 || bytes.length > 256 || bytes.includes(0)) sealError('invalid sealing context');
  return bytes;
}

/** A sealer over 32 key bytes (copied; the caller zeroes its own copy). */
export function createSealer(keyBytes: Uint8Array): Sealer {
  if (keyBytes.length !== KEY_BYTES) sealError('the key-encryption key must be 32 bytes');
  if (keyBytes.every((b) => b === 0)) sealError('the key-encryption key is all zeros');
  let key: KeyObject | null = createSecretKey(Buffer.from(keyBytes));
  const idBytes = createHmac('sha256', key).update('rampart/identity/kek-id/v1').digest().subarray(0, ID_BYTES);
  const id = idBytes.toString('hex');
  const live = (): KeyObject => key ?? sealError('the key-encryption key was destroyed');

  const sealer: Sealer = {
    id,
    wrap(plaintext, context) {
      const header = Buffer.concat([Buffer.of(VERSION), idBytes]);
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', live(), nonce, { authTagLength: TAG_BYTES });
      // The header is authenticated too: a value cannot be relabelled with another version or key id.
      cipher.setAAD(Buffer.concat([header, contextBytes(context)]));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return Buffer.concat([header, nonce, body, cipher.getAuthTag()]);
    },
    unwrap(sealed, context) {
      const input = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
      if (input.length < HEADER_BYTES + NONCE_BYTES + TAG_BYTES || input[0] !== VERSION) {
        sealError('sealed value is malformed');
      }
      if (!input.subarray(1, HEADER_BYTES).equals(idBytes)) {
        sealError('sealed value belongs to another key-encryption key', {
          kekId: id,
          sealedBy: input.subarray(1, HEADER_BYTES).toString('hex'),
        });
      }
      const nonce = input.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
      const tag = input.subarray(input.length - TAG_BYTES);
      const body = input.subarray(HEADER_BYTES + NONCE_BYTES, input.length - TAG_BYTES);
      try {
        const decipher = createDecipheriv('aes-256-gcm', live(), nonce, { authTagLength: TAG_BYTES });
        decipher.setAAD(Buffer.concat([input.subarray(0, HEADER_BYTES), contextBytes(context)]));
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(body), decipher.final()]);
      } catch (cause) {
        return sealError('sealed value failed authentication', { kekId: id }, cause);
      }
    },
    destroy() {
      key = null;
    },
  };
  Object.defineProperty(sealer, 'toJSON', { value: () => ({ kekId: id }), enumerable: false });
  Object.defineProperty(sealer, Symbol.for('nodejs.util.inspect.custom'), {
    value: () => `Sealer { id: '${id}' }`,
    enumerable: false,
  });
  return Object.freeze(sealer);
}

/**
 * Loads the key file at `path`, or creates it (32 random bytes as base64, mode 0600, created
 * exclusively so two processes cannot race into two keys). An existing file must be a regular file
 * readable by its owner only, like an ssh private key.
 */
export function openKeyFile(path: string): { sealer: Sealer; created: boolean } {
  let fd: number;
  try {
    // O_SYNC instead of fsync: the permission model disables fsync (and fchmod) on descriptors.
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_SYNC;
    fd = openSync(path, flags, 0o600);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'EEXIST') return { sealer: readKeyFile(path), created: false };
    return sealError('key file cannot be created', { path }, cause);
  }
  const material = randomBytes(KEY_BYTES);
  try {
    // Created with mode 0600 (the umask can only narrow it); no fchmod, which the permission model disables.
    writeSync(fd, `${material.toString('base64')}\n`);
    return { sealer: createSealer(material), created: true };
  } catch (cause) {
    rmSync(path, { force: true });
    throw cause;
  } finally {
    material.fill(0);
    closeSync(fd);
  }
}

function readKeyFile(path: string): Sealer {
  // O_NONBLOCK: a FIFO planted at the path must not hang start-up (fstat then refuses it).
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  const raw = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) sealError('key file is not a regular file', { path });
    if ((stat.mode & 0o077) !== 0) {
      sealError('key file must not be accessible by group or others (mode 0600)', { path });
    }
    const length = readSync(fd, raw, 0, raw.length, 0);
    if (length > MAX_KEY_FILE_BYTES) sealError('key file is too long', { path });
    const text = raw.subarray(0, length).toString('latin1').trim();
    if (!BASE64_KEY.test(text)) sealError('key file must hold the base64 of 32 bytes', { path });
    const material = Buffer.from(text, /[-_]/.test(text) ? 'base64url' : 'base64');
    try {
      return createSealer(material);
    } finally {
      material.fill(0);
    }
  } finally {
    raw.fill(0);
    closeSync(fd);
  }
}
