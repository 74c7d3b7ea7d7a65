/**
 * Settings of the gateway process (main thread and workers), in one place, each with its reason.
 */
export const GATEWAY_PROCESS_DEFAULTS = Object.freeze({
  /**
   * Time in-flight requests get to finish on shutdown. The launcher sends SIGKILL 10 s after SIGTERM
   * (LAUNCHER_DEFAULTS.stopGraceMs): 7 s of draining leaves time to close pools, hand over the last
   * decision events, spool them and give delivery its last moment (AUDIT_CLIENT_DEFAULTS.closeDeliveryMs, 2 s).
   */
  drainGraceMs: 7_000,
  /** A worker that has not exited this long after its drain deadline is terminated. */
  drainExtraMs: 1_500,
  /** A worker that does not answer a metrics scrape within 2 s is left out of that scrape (Prometheus' default scrape timeout is 10 s). */
  metricsTimeoutMs: 2_000,
  /** Building a new pipeline takes milliseconds; 10 s without an answer means the worker is stuck. */
  reconfigureTimeoutMs: 10_000,
  /**
   * Changes within 200 ms are one reload: an editor's save is often a truncate and a write, or a write
   * to a temporary file and a rename, and validating a half-written file would report false issues.
   */
  reloadDebounceMs: 200,
  /** While the manifest path is missing (between an unlink and a rename), look for it again this often. */
  rewatchMs: 500,
});
