/**
 * Timings and limits of live policy updates (issue 4: "policy updates from a changed manifest reach
 * every service without a restart"), for both ends: the control plane that watches the manifest and
 * the SDK that polls for its service's policy. One place, each value with its reason.
 */
export const POLICY_DEFAULTS = {
  /**
   * How often a service asks the control plane for its policy. A grant removed from the manifest stops
   * working everywhere within about this long (plus the file-watch debounce); each poll is one small
   * mTLS request on loopback, so even 100 services make 20 requests a second, which the control plane
   * answers from memory.
   */
  refreshMs: 5_000,
  /**
   * Up to this fraction of `refreshMs` is added at random to each poll, so services started together
   * do not poll in lockstep.
   */
  refreshJitterFraction: 1 / 5,
  /**
   * Longest wait between polls while the control plane does not answer (the wait doubles from
   * `refreshMs` per failure): when it comes back, services pick up changes within this.
   */
  retryMaxMs: 30_000,
  /**
   * One poll's whole exchange. Shorter than the API client's default (10 s): a service waits for its
   * first poll before it listens, and a policy answer on loopback takes milliseconds.
   */
  requestTimeoutMs: 3_000,
  /**
   * Edits arrive as several writes (truncate, write, rename): the control plane reloads once this long
   * after the last file event. The same value as the gateway's reload debounce.
   */
  reloadDebounceMs: 200,
  /** After the watched file disappears (an editor's rename), watch the path again after this long. */
  rewatchMs: 500,
  /** Largest `POST /v1/policy` body: an epoch (22 characters), a version and a digest (64) take ~130 bytes. */
  maxRequestBytes: 1_024,
  /**
   * Largest policy a service accepts, counted in rules (caller × rule) and patterns: far above any
   * hand-written manifest, and a bound on what a confused control plane can make a service compile.
   */
  maxRules: 10_000,
  maxPatternsPerRule: 1_000,
} as const;
