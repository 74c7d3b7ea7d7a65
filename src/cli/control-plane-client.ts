import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTROL_API_ERRORS, type ControlTarget, controlRequest } from '../control/api/index.ts';
import {
  type ControlEndpoint,
  OPERATOR_FILES,
  processAlive,
  readControlEndpoint,
  readOperatorCredential,
} from '../control/api/operator-access.ts';
import { CONTROL_FILES } from '../control/files.ts';
import { isRampartError } from '../core/errors.ts';
import { type FileLock, tryLockFile } from '../core/file-lock.ts';
import { oneLine } from './text.ts';

/**
 * How the operator's commands (`rampart ca`, `rampart secrets`) tell whether a control plane runs on a
 * data directory, and reach it. "Running" means the endpoint file the control plane writes before it
 * opens its databases names a live process; then the CLI never opens those databases for writing, even
 * if the API does not answer: the control plane is their one writer (the audit log above all). When none
 * runs, the command holds the data directory's lock (holdDataDir) while it works on the stores itself.
 */

/** A failure the CLI explains in its own words (exit 1). */
export class ControlPlaneFailure extends Error {}

/** A running control plane (its endpoint file names a live process), or null. */
export function findControlPlane(dataDir: string): ControlEndpoint | null {
  let endpoint: ControlEndpoint | null;
  try {
    endpoint = readControlEndpoint(dataDir);
  } catch (err) {
    throw new ControlPlaneFailure(
      `cannot tell whether a control plane runs: ${oneLine(err)}` +
        `\n  if none runs, remove ${join(dataDir, OPERATOR_FILES.endpoint)}`,
    );
  }
  // A file left by a control plane that was killed names a process that is gone.
  return endpoint !== null && processAlive(endpoint.pid) ? endpoint : null;
}

/**
 * For a command that opens the control plane's stores itself because none runs: holds the data
 * directory's lock — the one a control plane takes at start (CONTROL_FILES.lock) — until released, so
 * no control plane starts there meanwhile (it exits with CONTROL_ERR_RUNNING) and no second such command
 * writes at the same time. ControlPlaneFailure while someone else holds it. The directory must exist.
 */
export function holdDataDir(dataDir: string): FileLock {
  const lock = tryLockFile(join(dataDir, CONTROL_FILES.lock));
  if (lock !== null) return lock;
  const control = findControlPlane(dataDir);
  throw new ControlPlaneFailure(
    control !== null
      ? `a control plane (pid ${control.pid}) runs on ${dataDir}: nothing was changed; run the command again (it goes through the control plane where it can)`
      : `${dataDir} is in use by a starting control plane or another rampart command: nothing was changed; try again`,
  );
}

/** The operator API of a running control plane. */
export interface OperatorApi {
  endpoint: ControlEndpoint;
  /** POSTs `body` as JSON with the operator credential; the API's refusal code as a RampartError. */
  call<T>(path: string, body: unknown): Promise<T>;
}

/** The API of the running control plane, trusted through its bundle and checked by SPIFFE ID. */
export function operatorApi(dataDir: string, endpoint: ControlEndpoint): OperatorApi {
  let credential: string | null;
  try {
    credential = readOperatorCredential(dataDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ControlPlaneFailure(
      code === 'EACCES'
        ? `cannot read ${join(dataDir, OPERATOR_FILES.credential)}: permission denied (operating the system takes the rights of the user that runs it)`
        : `unusable operator credential: ${oneLine(err)}`,
    );
  }
  let bundle: string | null = null;
  try {
    bundle = readFileSync(join(dataDir, CONTROL_FILES.bundle), 'utf8');
  } catch {
    bundle = null;
  }
  if (credential === null || bundle === null) {
    throw new ControlPlaneFailure(
      `the control plane (pid ${endpoint.pid}) has not finished starting (no ${credential === null ? OPERATOR_FILES.credential : CONTROL_FILES.bundle} yet); try again`,
    );
  }
  const target: ControlTarget = {
    url: `https://127.0.0.1:${endpoint.port}`,
    bundle,
    trustDomain: endpoint.trustDomain,
  };
  const call = async <T>(path: string, body: unknown): Promise<T> => {
    try {
      return await controlRequest<T>(target, { method: 'POST', path, bearer: credential, body });
    } catch (err) {
      if (isRampartError(err, CONTROL_API_ERRORS.unavailable)) {
        // Never fall back to the databases: the process holds them.
        throw new ControlPlaneFailure(
          `the control plane (pid ${endpoint.pid}) does not answer on port ${endpoint.port} [${err.code}]` +
            `\n  it may be starting; if it is not a control plane, remove ${join(dataDir, OPERATOR_FILES.endpoint)}`,
        );
      }
      throw err;
    }
  };
  return { endpoint, call };
}
