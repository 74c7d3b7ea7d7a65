/**
 * Settings of the audit client every component emits through (client.ts, spool.ts), each with the
 * reason for its value.
 */
export const AUDIT_CLIENT_DEFAULTS = Object.freeze({
  /** The spool directory inside the emitting process's own data directory. */
  spoolDirectory: 'audit-spool',
  /**
   * Emitted events are written and `fdatasync`ed to the spool at least every 50 ms: an event is
   * durable within ~50 ms plus one fsync, and a busy component pays one fsync per batch rather than
   * per event (group commit).
   */
  commitIntervalMs: 50,
  /** ...or as soon as 1,000 events wait: bounds the size of one write. */
  commitMaxEvents: 1_000,
  /**
   * Events held in memory before they reach the spool (a disk that cannot keep up): about 40 MB at
   * ~400 bytes each. Past that, events are dropped and counted: emitting never waits for the disk.
   */
  maxQueuedEvents: 100_000,
  /**
   * Undelivered bytes the spool may hold: 256 MiB is ~600,000 gateway denials, hours of a flood with
   * the control plane away. Past it, new events are dropped and counted (`..._dropped_total`), so a
   * long outage cannot fill the disk the component also needs.
   */
  maxSpoolBytes: 256 * 1024 * 1024,
  /**
   * A spool segment is closed at this size; a delivered segment is deleted, so at most this much
   * delivered data lingers on disk.
   */
  segmentBytes: 4 * 1024 * 1024,
  /** Events per delivery request; the control plane accepts up to AUDIT_ROUTE_LIMITS.maxEvents. */
  batchMaxEvents: 500,
  /**
   * Bytes of events per delivery request: well under the route's body limit (1 MiB) with JSON's
   * framing, and small enough that one commit on the control plane stays short.
   */
  batchMaxBytes: 256 * 1024,
  /** First retry after a failed delivery; doubles per failure (with jitter). */
  retryInitialMs: 250,
  /**
   * Longest wait between delivery attempts while the control plane is away: events arrive within
   * this of its return.
   */
  retryMaxMs: 5_000,
  /** A delivery request that takes longer is abandoned and retried (the server deduplicates). */
  requestTimeoutMs: 10_000,
  /**
   * Idle keep-alive connections to the control plane close after this: under the server's 5 s
   * keep-alive timeout, so the client never reuses a socket the server is closing.
   */
  keepAliveMs: 4_000,
  /** On close, how long delivery of what is spooled may still take before the rest waits for the next start. */
  closeDeliveryMs: 2_000,
});

/** The settings of {@link AUDIT_CLIENT_DEFAULTS} as values. */
export type AuditClientSettings = {
  -readonly [K in keyof typeof AUDIT_CLIENT_DEFAULTS]: (typeof AUDIT_CLIENT_DEFAULTS)[K] extends number
    ? number
    : string;
};

/** Overrides of {@link AUDIT_CLIENT_DEFAULTS} (tests: short intervals, small bounds). */
export type AuditClientLimits = Partial<AuditClientSettings>;
