import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { localOperator } from '../control/api/operator-secrets-routes.ts';
import { AUDIT_ERRORS } from '../control/audit/errors.ts';
import { CA_ERRORS } from '../control/ca/errors.ts';
import { CONTROL_FILES } from '../control/files.ts';
import {
  KEK_ROTATION_ERRORS,
  type KekRotationResult,
  type KekStoreName,
  rotateControlPlaneKek,
} from '../control/kek-rotation.ts';
import { SEC_ERRORS } from '../control/secrets/errors.ts';
import { isRampartError } from '../core/errors.ts';
import type { FileLock } from '../core/file-lock.ts';
import { KEK_ENV, KEK_ERRORS, type Kek, type KekSource, loadKek } from '../core/kek.ts';
import { DEFAULT_DATA_DIR, type OperatorIo, runOperatorCommand, subcommandPrefix, UsageError } from './command.ts';
import { ControlPlaneFailure, findControlPlane, holdDataDir } from './control-plane-client.ts';
import { manifestPostgresStore, offlineAuditOrigin } from './offline-audit.ts';
import { clean, oneLine } from './text.ts';

/**
 * `rampart kek rotate`: moves the whole control plane to a new key-encryption key — the secrets' data
 * keys, the CA's signing keys and the audit log's signing key, re-wrapped store by store
 * (src/control/kek-rotation.ts, which explains the order and the recovery rule). Offline only: the
 * control plane holds the stores under the old key, so the command is refused while one runs on the
 * data directory.
 */
export type KekIo = OperatorIo;

const USAGE = `Usage: rampart kek rotate --new-key-file <path> [options]

  rotate   re-wrap every key the key-encryption key protects under a new one: the secrets' data
           keys, the CA's signing keys and the audit log's signing key. Values, certificates and
           log entries are not touched. Stop the control plane first.

Options:
  --new-key-file <path>  the new key: 32 bytes or their base64, mode 0600, e.g.
                         (umask 077; openssl rand -base64 32 > new.key)
  --data-dir <dir>       the control plane's data directory (default ${DEFAULT_DATA_DIR})
  --key-file <path>      the key in use (default: $${KEK_ENV} if set, else <data-dir>/${CONTROL_FILES.kek})
  --postgres <url>       the control plane's PostgreSQL store (secrets and audit log); default: the
                         project manifest's control.store, <data-dir>/../../rampart.yaml
  --json                 the result as JSON

Each store is re-wrapped in one transaction, in the order secrets, CA, audit log; the rotation is
recorded in the audit log (kek.rotate, kek.rotated) with you as actor. If the command is interrupted,
run it again with the same two keys: keys already under the new one are kept, the rest re-wrapped.
Until it reports done, a store under the other key does not open (the control plane does not start,
or runs without secrets); install the new key (and keep the old one) only afterwards.

Exit codes: 0 done, 1 refused or failed (the code is printed), 2 usage.
`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  'data-dir': { type: 'string' },
  'key-file': { type: 'string' },
  'new-key-file': { type: 'string' },
  postgres: { type: 'string' },
  json: { type: 'boolean' },
} as const;

function parse(args: string[]) {
  return parseArgs({ args, allowPositionals: true, strict: true, options: OPTIONS });
}

/** `rampart kek …`; resolves to the exit code. Never prints a stack trace or a key. */
export function runKek(args: string[], io: KekIo): Promise<number> {
  return runOperatorCommand({
    name: 'kek',
    usage: USAGE,
    io,
    parse: () => parse(args),
    failurePrefix: ({ positionals }) => subcommandPrefix('kek', positionals[0]),
    describe: describeError,
    run: async ({ values, positionals }) => {
      const [sub, ...extra] = positionals;
      if (sub !== 'rotate') {
        throw new UsageError(sub === undefined ? 'a command is required' : `unknown command "${clean(sub)}"`);
      }
      if (extra.length > 0) throw new UsageError('too many arguments');
      if (values['new-key-file'] === undefined) throw new UsageError('rotate needs --new-key-file');
      return await rotate(values, io);
    },
  });
}

async function rotate(values: ReturnType<typeof parse>['values'], io: KekIo): Promise<number> {
  const env = io.env ?? process.env;
  const dataDir = resolve(io.cwd, values['data-dir'] ?? DEFAULT_DATA_DIR);
  const refuseRunning = () => {
    const control = findControlPlane(dataDir);
    if (control !== null) {
      throw new ControlPlaneFailure(
        `the control plane (pid ${control.pid}) holds the stores open under the key in use: stop it, then run rampart kek rotate; nothing was changed`,
      );
    }
  };
  refuseRunning();
  const source: KekSource =
    values['key-file'] !== undefined
      ? { file: resolve(io.cwd, values['key-file']) }
      : env[KEK_ENV]
        ? { env: KEK_ENV, environment: env }
        : { file: join(dataDir, CONTROL_FILES.kek) };
  // Where the control plane keeps its secrets and audit log, and the log's origin, before any key is read.
  const postgres = values.postgres ?? manifestPostgresStore(dataDir);
  const origin = offlineAuditOrigin(dataDir, postgres !== undefined);
  let current: Kek | null = null;
  let next: Kek | null = null;
  let lock: FileLock | null = null;
  try {
    next = loadKek({ file: resolve(io.cwd, values['new-key-file']!) });
    current = loadKek(source);
    // Held while the stores are open: no control plane starts meanwhile, no second command writes.
    lock = holdDataDir(dataDir);
    const result = await rotateControlPlaneKek({
      dataDir,
      ...(postgres === undefined ? {} : { postgres }),
      origin,
      current,
      next,
      actor: localOperator(),
    });
    print(result, source, io, values.json === true);
    return 0;
  } finally {
    lock?.release();
    current?.destroy();
    next?.destroy();
  }
}

const STORE_NAMES: Record<KekStoreName, [string, string]> = {
  secrets: ['secrets', 'data keys'],
  ca: ['CA', 'signing keys'],
  audit: ['audit log', 'signing keys'],
};

function print(result: KekRotationResult, source: KekSource, io: KekIo, json: boolean): void {
  if (json) {
    io.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const out = (line: string) => io.stdout.write(`${line}\n`);
  out(`key-encryption key ${result.previousKekId} → ${result.kekId}`);
  for (const r of result.stores) {
    const [name, keys] = STORE_NAMES[r.store];
    const what =
      r.before === 'absent'
        ? 'none yet'
        : r.before === 'next'
          ? 'already under the new key (an earlier run finished it)'
          : `${r.rewrapped} ${keys} re-wrapped`;
    out(`  ${name.padEnd(9)}  ${what}`);
  }
  out(
    'file' in source
      ? `done: install the new key at ${source.file} before starting the control plane (the old key opens nothing now)`
      : `done: set ${source.env} to the new key before starting the control plane (the old key opens nothing now)`,
  );
}

/** Hints for the codes an operator can act on. */
const HINTS: Readonly<Record<string, string>> = {
  [KEK_ROTATION_ERRORS.sameKey]: 'the new key file holds the key in use; nothing was changed',
  [KEK_ROTATION_ERRORS.foreignKey]:
    'a store is under a third key (an earlier rotation to another key left unfinished?): finish that one with its key; nothing was changed',
  [KEK_ROTATION_ERRORS.incomplete]: 'run the same command again',
  [KEK_ERRORS.missing]: `the key file does not exist (the key in use: --key-file or $${KEK_ENV})`,
  [KEK_ERRORS.fileMode]: 'the key file must be a regular file of yours with mode 0600',
  [KEK_ERRORS.format]: 'a key is 32 bytes or their base64: (umask 077; openssl rand -base64 32 > new.key)',
  [SEC_ERRORS.sealed]: `the key in use does not open the secrets store: check --key-file or $${KEK_ENV}`,
  [CA_ERRORS.sealed]: `a CA key does not open: check --key-file or $${KEK_ENV}`,
  [AUDIT_ERRORS.sealed]: `the audit log's signing key does not open: check --key-file or $${KEK_ENV}`,
  [AUDIT_ERRORS.locked]: 'another process holds the audit log (a control plane on another host?): stop it first',
};

/** Which key a KEK error is about (both are loaded the same way). */
function keyNamed(err: { detail?: Record<string, unknown> | undefined }): string {
  const path = err.detail?.['path'];
  return typeof path === 'string' ? ` (${clean(path)})` : '';
}

/** One line: message, code, hint; then, when a store was already re-wrapped, what to do. */
function describeError(err: unknown): string {
  if (err instanceof ControlPlaneFailure) return clean(err.message);
  if (isRampartError(err)) {
    const reason = typeof err.detail?.['reason'] === 'string' ? ` (${clean(err.detail['reason'])})` : '';
    const store = typeof err.detail?.['store'] === 'string' ? ` in ${clean(err.detail['store'])}` : '';
    const hint = HINTS[err.code];
    const done = err.detail?.['rewrappedStores'];
    const resume =
      typeof done === 'string'
        ? `\n  already under the new key: ${clean(done)}; the rest is not. Fix the cause and run the same command again with the same two keys (keep both)`
        : '';
    return `${clean(err.message)}${reason}${store}${keyNamed(err)} [${clean(err.code)}]${hint ? `\n  ${hint}` : ''}${resume}`;
  }
  return `unexpected error: ${clean(oneLine(err))}\n  stores already re-wrapped stay so: run the same command again`;
}
