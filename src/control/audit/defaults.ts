/**
 * Audit log settings, each with the reason for its value (house style: defaults in one place).
 */
export const AUDIT_DEFAULTS = Object.freeze({
  /** The database file inside the control plane's data directory. */
  databaseFile: 'audit.db',
  /**
   * At most this many events per transaction. node:sqlite is synchronous, so one commit holds the
   * event loop for its inserts and one fsync: 10,000 events is ~40–60 ms of inserts on the bench
   * machine (bench/audit.bench.ts), an upper bound on the pause other work sees; the rest of the queue
   * goes into the next transaction right after.
   */
  maxBatchEvents: 10_000,
  /**
   * Events accepted but not yet committed. Past this, `append` refuses with AUDIT_ERR_OVERLOADED (503)
   * and senders keep their events in their own spool: memory stays bounded (100,000 events of ≤ 8 KiB
   * is under 1 GB in the worst case, ~40 MB for typical 400-byte events).
   */
  maxQueuedEvents: 100_000,
  /**
   * A checkpoint is signed this often when the log grew. Entries after the last checkpoint are
   * unsigned: whoever can write the database could drop them undetected, so the window is short. Each
   * checkpoint is a ~250-byte row and costs the verifier ~0.2 ms (signature, root, consistency proof;
   * measured with 10,000 checkpoints): at most 1,440 a day, ~2 minutes of verification per year of
   * them. Thinning old checkpoints (the newest commits to all history) is a later step.
   */
  checkpointIntervalMs: 60_000,
  /**
   * On-demand checkpoints (for a proof of a just-appended event) are signed at most this often; a
   * caller asking sooner gets AUDIT_ERR_RANGE with `retryAfterMs`. Bounds the signing rate and the
   * checkpoint table whatever clients ask (at most 8,640 a day with the periodic ones).
   */
  minCheckpointIntervalMs: 10_000,
  /** How long a connection waits for another's write lock (the CLI reading while the log writes). */
  busyTimeoutMs: 5_000,
  /**
   * The PostgreSQL schema holding the log's tables: its own namespace, so the log can share a
   * database with the secrets and identity stores (their schemas are `rampart_secrets`,
   * `rampart_identity`).
   */
  postgresSchema: 'rampart_audit',
  /**
   * Pooled PostgreSQL connections for reads (proofs, entry lookups), besides the one writer
   * connection: reads are single indexed lookups, and a few connections keep them off the writer's
   * transaction without holding many server backends.
   */
  postgresReadConnections: 4,
  /**
   * How long a starting log waits for the PostgreSQL writer lock before refusing (AUDIT_ERR_LOCKED). A
   * control plane restarted after a crash may start before the server has noticed the old process's
   * connection is gone and released its lock (normally milliseconds: the kernel closes the socket);
   * a second control plane left running still gets a clear refusal within seconds.
   */
  postgresWriterLockWaitMs: 5_000,
  /** How often that wait retries the lock: short against the restart case, cheap for the server. */
  postgresWriterLockPollMs: 100,
  /**
   * Entries the PostgreSQL verifier reads per query: ~4 MB of typical 400-byte events per round trip,
   * so a million-entry log is 100 round trips, and memory stays bounded whatever the log size.
   */
  postgresVerifyPage: 10_000,
});
