import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { parseTrustDomain } from '../../core/spiffe.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';
import { createCredentialCheck } from './launcher-credential.ts';

/**
 * How an operator on this machine reaches a running control plane (`rampart ca …`). At start the
 * control plane writes two files into its own data directory:
 *
 * - `operator.token` (0600): a random bearer credential for the operator routes (operator-routes.ts,
 *   operator-secrets-routes.ts), checked by {@link createOperatorAuthorization}.
 *   Being able to read it is the authority to operate this local system, as with a Docker socket: the
 *   data directory already holds the CA database and the development KEK, so the credential grants
 *   nothing its reader could not take from the files.
 * - `control-api.json`: the process id, the API's loopback port and the trust domain, so the CLI can
 *   find the API and check its SPIFFE ID. Written before the CA is opened, so that while the process
 *   lives the CLI never takes the database for itself.
 *
 * Both are replaced at every start (a new credential each time) and removed at shutdown.
 */
export const OPERATOR_FILES = {
  credential: 'operator.token',
  endpoint: 'control-api.json',
} as const;

/** What `control-api.json` says. */
export interface ControlEndpoint {
  pid: number;
  /** Loopback port of the HTTPS API. */
  port: number;
  trustDomain: string;
}

/** Largest file either reader accepts: both are well under 200 bytes. */
const MAX_FILE_BYTES = 4096;
const CREDENTIAL_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** Writes `content` to `file` with `mode` whole, then renames it into place: a reader never sees half. */
function writeAtomically(file: string, content: string, mode: number): void {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    unlinkSync(temporary);
  } catch {
    // usually absent
  }
  // O_EXCL | O_NOFOLLOW: never write through a link someone planted under the temporary name.
  const fd = openSync(
    temporary,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
}

/** Control plane: makes a new operator credential and writes it (0600) into `dataDir`. Returns it. */
export function writeOperatorCredential(dataDir: string): string {
  const credential = randomBytes(32).toString('base64url');
  writeAtomically(join(dataDir, OPERATOR_FILES.credential), `${credential}\n`, 0o600);
  return credential;
}

/**
 * Control plane: the one check of the operator credential, for every operator route (the CA's in
 * operator-routes.ts, the secrets' in operator-secrets-routes.ts), run before the body is parsed. A
 * request passes only with `Authorization: Bearer <credential>`, compared in constant time (SHA-256
 * digests of both sides, so equal lengths, then `timingSafeEqual`: launcher-credential.ts); anything
 * else (no header, another scheme, another token, one of another length) throws 401
 * CA_ERR_API_UNAUTHORIZED. Throws a RangeError at once for a credential that is not one
 * {@link writeOperatorCredential} makes.
 */
export function createOperatorAuthorization(credential: string): (req: IncomingMessage) => void {
  if (!CREDENTIAL_PATTERN.test(credential)) throw new RangeError(`${OPERATOR_FILES.credential} is malformed`);
  const check = createCredentialCheck(credential);
  return (req) => {
    if (!check(req.headers.authorization)) throw apiError(CONTROL_API_ERRORS.unauthorized, { route: 'operator' });
  };
}

/** Control plane: records where its API listens. */
export function writeControlEndpoint(dataDir: string, endpoint: ControlEndpoint): void {
  writeAtomically(join(dataDir, OPERATOR_FILES.endpoint), `${JSON.stringify(endpoint)}\n`, 0o644);
}

/** Control plane, at shutdown: removes both files (a missing one is fine). */
export function removeOperatorFiles(dataDir: string): void {
  for (const name of Object.values(OPERATOR_FILES)) {
    try {
      unlinkSync(join(dataDir, name));
    } catch {
      // already gone
    }
  }
}

/** Reads a small file without following a link; null when it does not exist. */
function readSmall(file: string): string | null {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const buffer = Buffer.alloc(MAX_FILE_BYTES + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > MAX_FILE_BYTES) throw new RangeError(`${file} is larger than ${MAX_FILE_BYTES} bytes`);
    }
    return buffer.subarray(0, length).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * CLI: the endpoint file of `dataDir`, null when there is none. Throws a RangeError when it exists but
 * is not what the control plane writes (the caller must then not assume that nothing runs).
 */
export function readControlEndpoint(dataDir: string): ControlEndpoint | null {
  const text = readSmall(join(dataDir, OPERATOR_FILES.endpoint));
  if (text === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RangeError(`${OPERATOR_FILES.endpoint} is not JSON`);
  }
  const { pid, port, trustDomain } = (typeof value === 'object' && value !== null ? value : {}) as Record<
    string,
    unknown
  >;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) {
    throw new RangeError(`${OPERATOR_FILES.endpoint}: bad pid`);
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new RangeError(`${OPERATOR_FILES.endpoint}: bad port`);
  }
  if (typeof trustDomain !== 'string') throw new RangeError(`${OPERATOR_FILES.endpoint}: bad trust domain`);
  try {
    return { pid, port, trustDomain: parseTrustDomain(trustDomain) };
  } catch {
    throw new RangeError(`${OPERATOR_FILES.endpoint}: bad trust domain`);
  }
}

/** CLI: the operator credential of `dataDir`, null when there is none; a RangeError when malformed. */
export function readOperatorCredential(dataDir: string): string | null {
  const text = readSmall(join(dataDir, OPERATOR_FILES.credential));
  if (text === null) return null;
  const credential = text.trim();
  if (!CREDENTIAL_PATTERN.test(credential)) throw new RangeError(`${OPERATOR_FILES.credential} is malformed`);
  return credential;
}

/**
 * Whether process `pid` exists. Signal 0 checks without signalling; EPERM means it exists under
 * another user. A recycled pid reads as alive: the caller then refuses rather than guesses.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
