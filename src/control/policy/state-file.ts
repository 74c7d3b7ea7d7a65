import { closeSync, constants, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { type CallerRules, policyDigest } from './compile.ts';
import { POLICY_ERRORS, policyError } from './errors.ts';

/** File name of the persisted policy state in the control plane's data directory. */
export const POLICY_STATE_FILE = 'policy.json';

/** The last good policy and its version, as persisted. */
export interface PolicyState {
  version: number;
  /** {@link policyDigest} of `services`. */
  digest: string;
  services: Record<string, CallerRules>;
}

const FORMAT = 1;

/**
 * Reads the persisted state, or null when there is none yet. A file that exists but is unreadable,
 * malformed, or whose digest does not match its content throws POLICY_ERR_STATE: the control plane
 * cannot know which policy it last served, so it must not guess (the operator restores the file or
 * removes it). The file holds no epoch: each start is a new one (policy-store.ts explains why).
 */
export function readPolicyState(file: string): PolicyState | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw policyError(POLICY_ERRORS.state, { file, reason: 'unreadable' }, err);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw policyError(POLICY_ERRORS.state, { file, reason: 'not json' }, cause);
  }
  const state = parsed as { format?: unknown; version?: unknown; digest?: unknown; services?: unknown };
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    state.format !== FORMAT ||
    typeof state.version !== 'number' ||
    !Number.isSafeInteger(state.version) ||
    state.version < 1 ||
    typeof state.digest !== 'string' ||
    typeof state.services !== 'object' ||
    state.services === null ||
    Array.isArray(state.services)
  ) {
    throw policyError(POLICY_ERRORS.state, { file, reason: 'shape' });
  }
  const services = state.services as Record<string, CallerRules>;
  if (policyDigest({ services }) !== state.digest) {
    throw policyError(POLICY_ERRORS.state, { file, reason: 'digest' });
  }
  return { version: state.version, digest: state.digest, services };
}

/**
 * Writes the state durably before it is served: a temporary file opened with O_SYNC (each write
 * returns once on disk; Node 24's permission model, which the control plane runs under, refuses fsync
 * on descriptors), renamed over the old one, then the directory synced where allowed. A crash leaves
 * the old state or the new one, never a mix. Without the directory sync a power loss can bring back
 * the previous state, with a lower version than services may hold; the start after it is a new epoch
 * (policy-store.ts), so services take what it serves instead of refusing it as stale.
 */
export function writePolicyState(file: string, state: PolicyState): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_SYNC, 0o600);
  try {
    writeFileSync(fd, `${JSON.stringify({ format: FORMAT, ...state })}\n`);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  let dir: number | null = null;
  try {
    dir = openSync(dirname(file), 'r');
    fsyncSync(dir);
  } catch {
    // Refused under the permission model, or by the file system: best effort (see above).
  } finally {
    if (dir !== null) closeSync(dir);
  }
}
