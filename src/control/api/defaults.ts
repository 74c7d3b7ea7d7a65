/**
 * Limits and timings of the control plane's HTTPS API and of its clients, in one place, each with
 * its reason. The API listens on loopback only and serves a handful of small JSON requests per
 * process lifetime; everything is sized for that, so a misbehaving or hostile local client gets
 * little.
 */
export const CONTROL_API_DEFAULTS = {
  /** Largest request body: a CSR is at most 16 KiB (CA_DEFAULTS.maxCsrBytes), JSON adds little. */
  maxBodyBytes: 32 * 1024,
  /** Largest body of an operator route (`{"immediate":true}` at most): nothing to send but a flag. */
  maxOperatorBodyBytes: 1024,
  /** Largest response a client reads: a bundle of a few CAs plus one leaf is a few KiB. */
  maxResponseBytes: 256 * 1024,
  /** Time to complete a TLS handshake (Node's default, 120 s, is for the open internet at best). */
  handshakeTimeoutMs: 10_000,
  /** Time to receive the request head. */
  headersTimeoutMs: 5_000,
  /** Time to receive the whole request. */
  requestTimeoutMs: 10_000,
  /**
   * Idle keep-alive connections close after this: longer than the SDK's secret cache lifetime
   * (SECRETS_DEFAULTS.cacheTtlMs, 30 s), so a service's next secret read finds its connection open
   * instead of paying a TLS handshake and an SVID check (several ms). One idle connection per
   * workload is all this keeps; `maxConnections` still bounds them.
   */
  keepAliveTimeoutMs: 65_000,
  /** Concurrent connections: one per process being started or renewing, with a wide margin. */
  maxConnections: 256,
  /** Largest request head (Node's default is 16 KiB; a bearer credential and a few headers need far less). */
  maxHeaderBytes: 8 * 1024,
  /** A client's whole exchange (connect, TLS, request, response). */
  clientTimeoutMs: 10_000,
  /** How often the control plane drives CA rotation (`tick`) and refreshes its TLS context. */
  tickIntervalMs: 5_000,
} as const;

/**
 * Renewal schedule of a workload's SVID (issue 4: "renew at half their lifetime with jitter";
 * SPIRE renews at ½ as well). Jitter spreads renewals of processes started together.
 */
export const SVID_RENEWAL_DEFAULTS = {
  /** Renew when this fraction of the lifetime has passed… */
  renewAtFraction: 1 / 2,
  /** …minus up to this fraction of the lifetime, at random. */
  jitterFraction: 1 / 10,
  /** First retry after a failed renewal; doubles per failure. */
  retryInitialMs: 1_000,
  /** Longest wait between retries: the control plane coming back is noticed within this. */
  retryMaxMs: 30_000,
  /**
   * Warn (log at error, gauge set) once less than this fraction of the lifetime is left: with a 1 h
   * SVID that is 15 min, time for an operator to bring the control plane back.
   */
  warnRemainingFraction: 1 / 4,
  /** How long a process retries its first SVID before giving up (the launcher restarts it). */
  firstSvidDeadlineMs: 30_000,
  /**
   * How often a workload fetches the trust bundle: the CA's `bundleRefreshHintMs` (60 s). A new CA
   * waits five of these (CA_DEFAULTS.bundlePropagationMs) before it signs anything.
   */
  bundleRefreshMs: 60_000,
} as const;

/**
 * The SPIFFE names of Rampart's own components. The CA issues `spiffe://<td>/svc/<name>` only
 * (authority.ts `issue`), so components take the `svc/` form of their reserved names: no service can
 * be called `control` or `gateway` (launcher/plan.ts `startOrder`), so these cannot be impersonated
 * by a service's SVID.
 */
export const COMPONENT_SERVICE_NAMES = {
  control: 'control',
  gateway: 'gateway',
} as const;
