import { closeSync, constants, fstatSync, fsyncSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import sodium, { type SecureBuffer } from 'sodium-native';
import { RampartError } from './errors.ts';

/**
 * The key-encryption key (KEK): 32 random bytes that wrap (encrypt) other keys at rest — the CA's
 * signing keys, the secrets' data keys and the audit log's signing key (DESIGN.md "Secrets"); one
 * command re-wraps all of them under a new KEK (src/control/kek-rotation.ts). Wrapping is libsodium's
 * XChaCha20-Poly1305 (IETF AEAD, 192-bit random nonces: no nonce bookkeeping, no birthday worry), with
 * associated data that names what is wrapped (`rampart/ca-key/v1/<slot>`), so a wrapped value copied
 * into another row does not unwrap there.
 *
 * Where the KEK comes from, in order of preference for production: a key file readable by its owner
 * only (a mounted secret), or an environment variable holding it in base64. `rampart start` makes a
 * development key file (createDevKek). The KEK lives in libsodium's guarded memory (sodium_malloc:
 * guard pages, mlock where the system allows) and is readable only while a wrap/unwrap runs.
 */

/** Stable codes of KEK failures. */
export const KEK_ERRORS = {
  /** No key: the file does not exist, or the environment variable is unset or empty. */
  missing: 'KEK_ERR_MISSING',
  /** The key file is readable by others (mode wider than 0600), is not a regular file, or has a foreign owner. */
  fileMode: 'KEK_ERR_FILE_MODE',
  /** The key is not 32 bytes (raw) or the base64 of 32 bytes, or is all zeros. */
  format: 'KEK_ERR_FORMAT',
  /** The value was wrapped by another KEK: this key cannot open it (the store stays sealed). */
  wrongKey: 'KEK_ERR_WRONG_KEY',
  /** Authentication failed: the wrapped value was altered, or is opened under another context. */
  unwrap: 'KEK_ERR_UNWRAP',
  /** The wrapped value is not in a format this version reads. */
  malformed: 'KEK_ERR_MALFORMED',
  /** The KEK was destroyed (`destroy()`); no further use. */
  destroyed: 'KEK_ERR_DESTROYED',
  /** A context string is empty, too long or contains NUL. */
  context: 'KEK_ERR_CONTEXT',
} as const;

/** Length of a KEK in bytes (XChaCha20-Poly1305 key size). */
export const KEK_BYTES = 32;

/** Default environment variable for a base64 KEK (Rampart's `RAMPART_*` namespace). */
export const KEK_ENV = 'RAMPART_KEK';

const VERSION = 1;
/** Key check value length: identifies the KEK that wrapped a value without revealing anything about it. */
const KEK_ID_BYTES = 16;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KEK_ID_BYTES;
/** A key file is at most this long (raw 32 bytes or base64 with a newline); anything longer is refused unread. */
const MAX_KEY_FILE_BYTES = 128;
const MAX_CONTEXT_BYTES = 256;
const BASE64 = /^[A-Za-z0-9+/_-]{43}={0,1}$/;

// @types/sodium-native predates sodium_free; sodium-native 5 has it (it detaches the buffer).
const sodiumFree = (sodium as unknown as { sodium_free(buffer: Buffer): void }).sodium_free;

/**
 * A loaded key-encryption key. Never serializable: `toJSON` and inspection show only the id.
 */
export interface Kek {
  /** Key check value (hex): which KEK this is, safe to log and store; reveals nothing about the key. */
  readonly id: string;
  /**
   * Encrypts `plaintext` under the KEK with `context` as associated data. The result carries a version
   * byte, this KEK's id and a random nonce. The caller still owns (and should zero) `plaintext`.
   */
  wrap(plaintext: Uint8Array, context: string): Buffer;
  /**
   * Opens a value made by `wrap` with the same context. Throws KEK_ERR_WRONG_KEY when another KEK
   * wrapped it and KEK_ERR_UNWRAP when it was altered or the context differs; never returns garbage.
   * The caller owns the returned buffer and should `sodium_memzero` it after use.
   */
  unwrap(sealed: Uint8Array, context: string): Buffer;
  /** Zeroes and frees the key; every later call throws KEK_ERR_DESTROYED. */
  destroy(): void;
}

function kekError(code: string, message: string, detail?: Record<string, unknown>, cause?: unknown): RampartError {
  return new RampartError(code, message, { status: 500, detail, cause });
}

function contextBytes(context: string): Buffer {
  const bytes = Buffer.from(String(context), 'utf8');
  if (bytes.length === 0 || bytes.length > MAX_CONTEXT_BYTES || bytes.includes(0)) {
    throw kekError(KEK_ERRORS.context, 'invalid key-wrapping context');
  }
  return bytes;
}

/**
 * Makes a Kek from 32 key bytes. Copies them into guarded memory; the caller zeroes its own copy.
 */
function kekFromBytes(material: Buffer): Kek {
  if (material.length !== KEK_BYTES) throw kekError(KEK_ERRORS.format, 'the key-encryption key must be 32 bytes');
  if (sodium.sodium_is_zero(material, material.length)) {
    throw kekError(KEK_ERRORS.format, 'the key-encryption key is all zeros');
  }
  let key: SecureBuffer | null = sodium.sodium_malloc(KEK_BYTES);
  material.copy(key);
  const idBytes = Buffer.alloc(KEK_ID_BYTES);
  sodium.crypto_generichash(idBytes, Buffer.from('rampart/kek-id/v1'), key);
  sodium.sodium_mprotect_noaccess(key);
  const id = idBytes.toString('hex');

  /** Runs `fn` with the key readable, and makes it unreadable again whatever happens. */
  const withKey = <T>(fn: (k: Buffer) => T): T => {
    if (key === null) throw kekError(KEK_ERRORS.destroyed, 'the key-encryption key was destroyed');
    const k = key;
    sodium.sodium_mprotect_readonly(k);
    try {
      return fn(k);
    } finally {
      sodium.sodium_mprotect_noaccess(k);
    }
  };

  const kek: Kek = {
    id,
    wrap(plaintext, context) {
      const ad = contextBytes(context);
      const message = Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
      const out = Buffer.alloc(HEADER_BYTES + NONCE_BYTES + message.length + TAG_BYTES);
      out[0] = VERSION;
      idBytes.copy(out, 1);
      const nonce = out.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
      sodium.randombytes_buf(nonce);
      // The header is authenticated too: a value cannot be relabelled with another version or KEK id.
      const aad = Buffer.concat([out.subarray(0, HEADER_BYTES), ad]);
      withKey((k) =>
        sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
          out.subarray(HEADER_BYTES + NONCE_BYTES),
          message,
          aad,
          null,
          nonce,
          k,
        ),
      );
      return out;
    },
    unwrap(sealed, context) {
      const ad = contextBytes(context);
      const input = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
      if (input.length < HEADER_BYTES + NONCE_BYTES + TAG_BYTES || input[0] !== VERSION) {
        throw kekError(KEK_ERRORS.malformed, 'wrapped key is malformed', { length: input.length });
      }
      if (!sodium.sodium_memcmp(input.subarray(1, HEADER_BYTES), idBytes)) {
        throw kekError(KEK_ERRORS.wrongKey, 'wrapped key was sealed by another key-encryption key', {
          kekId: id,
          sealedBy: input.subarray(1, HEADER_BYTES).toString('hex'),
        });
      }
      const nonce = input.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
      const ciphertext = input.subarray(HEADER_BYTES + NONCE_BYTES);
      const out = Buffer.alloc(ciphertext.length - TAG_BYTES);
      const aad = Buffer.concat([input.subarray(0, HEADER_BYTES), ad]);
      try {
        withKey((k) => sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, ciphertext, aad, nonce, k));
      } catch (cause) {
        sodium.sodium_memzero(out);
        if (cause instanceof RampartError) throw cause;
        throw kekError(KEK_ERRORS.unwrap, 'wrapped key failed authentication', { kekId: id }, cause);
      }
      return out;
    },
    destroy() {
      if (key === null) return;
      sodium.sodium_mprotect_readwrite(key);
      sodium.sodium_memzero(key);
      sodiumFree(key);
      key = null;
    },
  };
  // Keep the key out of logs and JSON even by accident (the buffer is unreachable anyway).
  Object.defineProperty(kek, 'toJSON', { value: () => ({ kekId: id }), enumerable: false });
  Object.defineProperty(kek, Symbol.for('nodejs.util.inspect.custom'), {
    value: () => `Kek { id: '${id}' }`,
    enumerable: false,
  });
  return Object.freeze(kek);
}

/**
 * Decodes key text: 32 raw bytes, or standard/URL-safe base64 of 32 bytes (one trailing newline allowed).
 * Zeroes nothing: the caller owns `bytes`.
 */
function decodeKeyBytes(bytes: Buffer): Buffer {
  if (bytes.length === KEK_BYTES) return Buffer.from(bytes);
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0a) end--;
  if (end > 0 && bytes[end - 1] === 0x0d) end--;
  const text = bytes.subarray(0, end).toString('latin1');
  if (!BASE64.test(text)) {
    throw kekError(KEK_ERRORS.format, 'the key-encryption key must be 32 bytes or their base64', {
      length: bytes.length,
    });
  }
  const decoded = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
  if (decoded.length !== KEK_BYTES) {
    sodium.sodium_memzero(decoded);
    throw kekError(KEK_ERRORS.format, 'the key-encryption key must be 32 bytes or their base64', {
      length: decoded.length,
    });
  }
  return decoded;
}

/** Refuses a key file anyone but its owner could read or write (as ssh does for private keys). */
function checkKeyFile(fd: number, path: string): number {
  const stat = fstatSync(fd);
  if (!stat.isFile()) throw kekError(KEK_ERRORS.fileMode, 'key file is not a regular file', { path });
  if ((stat.mode & 0o077) !== 0) {
    throw kekError(KEK_ERRORS.fileMode, 'key file must not be accessible by group or others (mode 0600 or stricter)', {
      path,
      mode: `0${(stat.mode & 0o777).toString(8)}`,
    });
  }
  const euid = process.geteuid?.();
  if (euid !== undefined && stat.uid !== euid && stat.uid !== 0) {
    throw kekError(KEK_ERRORS.fileMode, 'key file is owned by another user', { path, owner: stat.uid });
  }
  if (stat.size > MAX_KEY_FILE_BYTES) {
    throw kekError(KEK_ERRORS.format, 'the key-encryption key must be 32 bytes or their base64', { path });
  }
  return stat.size;
}

function readKeyFile(path: string): Kek {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang start-up (fstat then refuses it).
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw kekError(KEK_ERRORS.missing, 'key file not found', { path }, cause);
    throw kekError(KEK_ERRORS.missing, 'key file cannot be read', { path, errno: code }, cause);
  }
  const raw = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
  try {
    checkKeyFile(fd, path); // on the open descriptor: no window between the check and the read
    let length = 0;
    for (;;) {
      const n = readSync(fd, raw, length, raw.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > MAX_KEY_FILE_BYTES) {
        throw kekError(KEK_ERRORS.format, 'the key-encryption key must be 32 bytes or their base64', { path });
      }
    }
    const material = decodeKeyBytes(raw.subarray(0, length));
    try {
      return kekFromBytes(material);
    } finally {
      sodium.sodium_memzero(material);
    }
  } finally {
    sodium.sodium_memzero(raw);
    closeSync(fd);
  }
}

/**
 * One step of a KEK rotation: `sealed` re-wrapped from `from` to `to` under the same context, or null
 * when `to` already opens it (a rotation run again after an interruption leaves finished values as
 * they are). Every value is authenticated under the key that sealed it; the plaintext lives only
 * inside this call and is zeroed. Throws what `from.unwrap` throws: KEK_ERR_WRONG_KEY when neither
 * key sealed it, KEK_ERR_UNWRAP when it was altered.
 */
export function rewrapSealed(from: Kek, to: Kek, sealed: Uint8Array, context: string): Buffer | null {
  let opened: Buffer;
  try {
    opened = to.unwrap(sealed, context);
  } catch (err) {
    if (!(err instanceof RampartError) || err.code !== KEK_ERRORS.wrongKey) throw err;
    const plaintext = from.unwrap(sealed, context);
    try {
      return to.wrap(plaintext, context);
    } finally {
      sodium.sodium_memzero(plaintext);
    }
  }
  sodium.sodium_memzero(opened);
  return null;
}

/** Where to load the KEK from. */
export type KekSource =
  /** A key file: 32 raw bytes or their base64; mode 0600 or stricter, owned by this user (or root). */
  | { file: string }
  /** An environment variable holding the base64 of 32 bytes (default name {@link KEK_ENV}). */
  | { env: string; environment?: Readonly<Record<string, string | undefined>> };

/**
 * Loads the KEK. Throws KEK_ERR_MISSING, KEK_ERR_FILE_MODE or KEK_ERR_FORMAT; never starts with a
 * default or empty key.
 */
export function loadKek(source: KekSource): Kek {
  if ('file' in source) return readKeyFile(source.file);
  const value = (source.environment ?? process.env)[source.env];
  if (value === undefined || value === '') {
    throw kekError(KEK_ERRORS.missing, 'key-encryption key variable is not set', { variable: source.env });
  }
  // A JavaScript string cannot be zeroed; the decoded bytes can.
  const bytes = Buffer.from(value, 'latin1');
  try {
    if (bytes.length === KEK_BYTES) {
      throw kekError(KEK_ERRORS.format, 'the key-encryption key variable must hold base64', {
        variable: source.env,
      });
    }
    const material = decodeKeyBytes(bytes);
    try {
      return kekFromBytes(material);
    } finally {
      sodium.sodium_memzero(material);
    }
  } finally {
    sodium.sodium_memzero(bytes);
  }
}

/**
 * Flushes the new key file to disk before anything is wrapped with it (a key lost to a power cut
 * would leave the CA sealed forever). Node's permission model disables fsync on descriptors; a
 * process running under it (the launcher's children) skips the flush — `rampart start` itself, which
 * runs unrestricted, should be the one creating the file.
 */
function syncIfPermitted(fd: number): void {
  try {
    fsyncSync(fd);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_ACCESS_DENIED') throw err;
  }
}

/**
 * The development KEK for `rampart start`: loads the key file at `path`, or creates it (32 random
 * bytes, base64, mode 0600, created exclusively so two starts cannot race into two keys) when it does
 * not exist. An existing file goes through the same checks as {@link loadKek}. Production deployments
 * mount their own key file or set the environment variable instead.
 */
export function createDevKek(path: string): { kek: Kek; created: boolean } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'EEXIST') return { kek: readKeyFile(path), created: false };
    throw kekError(KEK_ERRORS.missing, 'key file cannot be created', { path }, cause);
  }
  const material = Buffer.alloc(KEK_BYTES);
  const text = Buffer.alloc(45);
  try {
    // The umask can only narrow 0600. Checked, not fchmod'ed: fchmod is unavailable under Node's
    // permission model, and a file system that ignores modes must make us stop, not carry on.
    checkKeyFile(fd, path);
    sodium.randombytes_buf(material);
    text.write(material.toString('base64'), 'latin1');
    text[44] = 0x0a;
    writeSync(fd, text);
    syncIfPermitted(fd);
    return { kek: kekFromBytes(material), created: true };
  } catch (cause) {
    // Never leave a half-written key behind: the next start would refuse it as malformed.
    rmSync(path, { force: true });
    throw cause;
  } finally {
    sodium.sodium_memzero(material);
    sodium.sodium_memzero(text);
    closeSync(fd);
  }
}
