import { DatabaseSync } from 'node:sqlite';
import { CA_SCHEMA_VERSION, CaStore } from './database.ts';
import { CA_DEFAULTS } from './defaults.ts';
import { CA_ERRORS, caError } from './errors.ts';
import { fingerprint } from './signing-ca.ts';
import { type CaStatus, computeStatus } from './status.ts';

/** Options of {@link readCaStatus}. */
export interface ReadCaStatusOptions {
  /** The CA database file (it must exist: nothing is created). */
  databasePath: string;
  /** Default `Date.now()`. */
  now?: number;
  /** As in CertificateAuthorityOptions; default two SVID lifetimes of the default TTL. */
  anchorWarningMs?: number;
}

/**
 * The CA's status read straight from its database, for `rampart ca status` when no control plane is
 * running: the connection is read-only (SQLite refuses every write on it), and no key is unwrapped,
 * so no KEK is needed. `openCertificateAuthority` would not do: it unseals the keys and runs a tick,
 * which writes.
 */
export function readCaStatus(options: ReadCaStatusOptions): CaStatus {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(options.databasePath, { readOnly: true });
  } catch (cause) {
    throw caError(CA_ERRORS.schema, { reason: 'open' }, cause);
  }
  const store = new CaStore(db);
  try {
    let version: string | null;
    let trustDomain: string | null;
    try {
      version = store.meta('schema_version');
      trustDomain = store.meta('trust_domain');
    } catch (cause) {
      // Not a CA database (no meta table), or not a database at all.
      throw caError(CA_ERRORS.schema, { reason: 'not a CA database' }, cause);
    }
    if (version === null || Number(version) !== CA_SCHEMA_VERSION) {
      throw caError(CA_ERRORS.schema, { found: version, expected: CA_SCHEMA_VERSION });
    }
    if (trustDomain === null) throw caError(CA_ERRORS.schema, { reason: 'no trust domain' });
    const now = options.now ?? Date.now();
    return computeStatus({
      trustDomain,
      now,
      settings: {
        anchorWarningMs: options.anchorWarningMs ?? CA_DEFAULTS.anchorWarningSvidTtls * CA_DEFAULTS.svidTtlMs,
      },
      bundleSequence: store.bundleSequence(),
      authorities: store.liveAuthorities().map((row) => ({
        row,
        sha256: fingerprint(row.certificate),
        lastLeafNotAfter: store.lastLeafNotAfter(row.generation),
        liveSvids: store.liveLeafCount(row.generation, now),
      })),
      holdersBehind: (sequence, publishedAt) => store.holdersBehind(sequence, publishedAt, now),
    });
  } finally {
    store.close();
  }
}
