/**
 * The audit log module of the control plane (issue 6 "Audit log"). The flow, in order:
 *
 * 1. event       core/audit-event.ts  schema, validation (unknown fields, secret-looking values refused),
 *                                     canonical bytes (sorted-key JSON, RFC 8785 for this value domain)
 * 2. append      log.ts               validated and hashed in the caller's turn, queued, committed in one
 *                                     transaction per event-loop turn (group commit), durable on resolve
 * 3. store       database.ts          entries + every perfect subtree hash (SQLite WAL, synchronous=FULL);
 *                postgres-database.ts the same tables in PostgreSQL (one writer connection holding an
 *                                     advisory lock), used by postgres-log.ts; connectAuditLog chooses
 * 4. tree        merkle.ts            RFC 9162 §2.1: frontier, roots at any size, inclusion and
 *                                     consistency proofs, their verification
 * 5. checkpoint  checkpoint.ts        C2SP tlog-checkpoint text, signed as a C2SP signed note (note.ts)
 *                                     with the log's Ed25519 key (signing-key.ts, wrapped by the KEK)
 * 6. verify      verify.ts            recomputes everything from the stored bytes, names the first bad index
 *                                     (postgres-verify.ts: the same checks, read in pages in one snapshot)
 * 7. read        query.ts             filters for `rampart audit tail|query` (postgres-query.ts)
 */
export { type Checkpoint, formatCheckpoint, openCheckpoint, parseCheckpointText } from './checkpoint.ts';
export { AUDIT_SCHEMA_VERSION, openAuditDatabase } from './database.ts';
export { AUDIT_DEFAULTS } from './defaults.ts';
export { AUDIT_ERRORS } from './errors.ts';
export {
  type AnyAuditLog,
  type AppendReceipt,
  type AuditLog,
  type AuditLogOptions,
  type AuditLogStats,
  type ConnectAuditLogOptions,
  type ConsistencyProofResult,
  connectAuditLog,
  type InclusionProofResult,
  type LoggedEvent,
  openAuditLog,
  type SignedCheckpoint,
} from './log.ts';
export {
  consistencyProof,
  EMPTY_ROOT,
  inclusionProof,
  leafHash,
  nodeHash,
  rootFromInclusionProof,
  verifyConsistency,
  verifyInclusion,
} from './merkle.ts';
export { formatVerifierKey, openNote, parseVerifierKey, signNote } from './note.ts';
export type { PostgresAuditTarget } from './postgres-database.ts';
export type { PostgresAuditLog, PostgresAuditLogOptions } from './postgres-log.ts';
export { type AuditQuery, QUERY_LIMITS, type QueryResult, queryEvents, tailEvents } from './query.ts';
export {
  VERIFY_PROBLEMS,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyProblemKind,
  type VerifyReport,
  verifyLog,
  verifyLogFile,
} from './verify.ts';
