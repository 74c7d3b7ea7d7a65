import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULTS } from '../config/defaults.ts';
import { loadManifest } from '../config/load.ts';
import type { DatabaseStoreConfig } from '../config/model.ts';
import { openAuditDatabase } from '../control/audit/database.ts';
import { AUDIT_DEFAULTS } from '../control/audit/defaults.ts';
import { type AnyAuditLog, connectAuditLog } from '../control/audit/log.ts';
import { readCaStatus } from '../control/ca/index.ts';
import { CONTROL_FILES } from '../control/files.ts';
import type { AuditEvent } from '../core/audit-event.ts';
import type { Kek } from '../core/kek.ts';
import { ControlPlaneFailure } from './control-plane-client.ts';

/**
 * The audit log of a control plane's data directory, opened by the CLI while no control plane runs
 * (`rampart secrets`, `rampart ca rotate`): the CLI is then the log's one writer for a moment and
 * appends its admin events itself; `close` signs a checkpoint over them, so `rampart audit verify`
 * covers them. A caller checks that no control plane runs first (control-plane-client.ts).
 */
export interface OfflineAuditLog {
  /** Appends one event; resolves once it is durable, rejects otherwise (the caller fails closed). */
  append(event: AuditEvent): Promise<void>;
  close(): Promise<void>;
}

/** The manifest of the project a data directory belongs to, as `rampart start` lays it out. */
function projectManifest(dataDir: string): string {
  return resolve(dataDir, '..', '..', DEFAULTS.manifestFile);
}

/**
 * Where the control plane keeps its audit log and secrets when the operator did not say (`--postgres`):
 * the PostgreSQL URL of the project manifest's `control.store`, or undefined for the data directory's
 * files (no manifest there, or `sqlite`). A manifest that does not load is refused: it may name
 * PostgreSQL, and writing the local files instead would put the command where the control plane never
 * looks. The URL may hold a password: never print it.
 */
export function manifestPostgresStore(dataDir: string): string | undefined {
  const file = projectManifest(dataDir);
  if (!existsSync(file)) return undefined;
  let store: DatabaseStoreConfig;
  try {
    store = loadManifest(file).control.store;
  } catch {
    throw new ControlPlaneFailure(
      `${file} does not load (rampart check shows why), so where the control plane keeps its audit log and secrets is unknown:` +
        '\n  fix it first (rampart secrets can also name the store with --postgres); nothing was changed',
    );
  }
  return store.kind === 'postgres' ? store.url : undefined;
}

/** Checkpoint origin of a system's log, as the control plane opens it (src/control/main.ts). */
function originOf(trustDomain: string): string {
  return `${trustDomain}/rampart/audit`;
}

/**
 * The log's origin, fixed when the log was made: the one stored in `audit.db` (a SQLite log); for a
 * log not made yet, or one in PostgreSQL (`inPostgres`; opening it checks the stored origin), from the
 * trust domain of the CA database in the data directory, else of the manifest of the project the data
 * directory belongs to (`<project>/.rampart/control` → `<project>/rampart.yaml`, as `rampart start`
 * lays it out). The control plane refuses a log of another origin, so nothing is guessed: with none of
 * these, the command is refused before anything is changed.
 */
export function offlineAuditOrigin(dataDir: string, inPostgres = false): string {
  const logFile = join(dataDir, AUDIT_DEFAULTS.databaseFile);
  if (!inPostgres && existsSync(logFile)) {
    const db = openAuditDatabase(logFile, { readOnly: true });
    try {
      const row = db.prepare("SELECT value FROM meta WHERE key = 'origin'").get() as { value: string } | undefined;
      if (row !== undefined) return row.value;
    } finally {
      db.close();
    }
  }
  const caFile = join(dataDir, CONTROL_FILES.ca);
  if (existsSync(caFile)) return originOf(readCaStatus({ databasePath: caFile }).trustDomain);
  const manifestFile = projectManifest(dataDir);
  if (existsSync(manifestFile)) return originOf(loadManifest(manifestFile).trustDomain);
  throw new ControlPlaneFailure(
    `no audit log in ${dataDir} and no trust domain to start one with (no ca.db there, no ${manifestFile}):` +
      '\n  run the command from the project directory, or rampart start once; nothing was changed',
  );
}

/**
 * Opens (creating when needed) the system's audit log under `kek`, with `origin`: the data directory's
 * `audit.db`, or the PostgreSQL database at `postgres` (the control plane's `control.store`, schema
 * AUDIT_DEFAULTS.postgresSchema), whose writer lock refuses a second writer (AUDIT_ERR_LOCKED).
 */
export async function openOfflineAuditLog(
  dataDir: string,
  origin: string,
  kek: Kek,
  postgres?: string,
): Promise<OfflineAuditLog> {
  const log: AnyAuditLog = await connectAuditLog({
    ...(postgres === undefined
      ? { path: join(dataDir, AUDIT_DEFAULTS.databaseFile) }
      : { postgres: { connectionString: postgres, writerLockWaitMs: 0 } }),
    origin,
    kek,
    // One short-lived writer: no timer; close() signs the checkpoint.
    checkpointIntervalMs: 0,
  });
  return {
    async append(event) {
      await log.append([event]);
    },
    close: () => log.close(),
  };
}
