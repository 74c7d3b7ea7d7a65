import type { CallerRule } from '../../core/runtime.ts';

/**
 * What travels between the control plane and a service for live policy updates (`POST /v1/policy`).
 * Types only, so the SDK can import them without the manifest loader.
 *
 * A policy a service holds is named by three things: the epoch of the control plane's policy history
 * it came from (new at every control plane start, policy-store.ts), the version within that epoch, and
 * the digest of the service's own rules (digest.ts `callersDigest`). The control plane answers
 * "unchanged" (no rules) only when all three equal what it serves; the service takes an answer from
 * another epoch whatever its version, and within its epoch refuses a lower version.
 */

/** Route of the control plane API that answers a service's policy. */
export const POLICY_ROUTE = 'POST /v1/policy';

/** The request body: what the service holds. Exactly these fields; anything else is refused (400). */
export interface PolicyRequest {
  /** The epoch of the policy held; null for the launcher's snapshot, which belongs to no epoch. */
  epoch: string | null;
  /** The version held (0 for the launcher's snapshot). */
  version: number;
  /** `callersDigest` of the rules held. */
  digest: string;
}

/**
 * The answer: the epoch and version served, the digest of the caller's own inbound policy at that
 * version and, unless the caller already holds exactly that, the policy itself (caller SPIFFE ID →
 * rules). Never another service's.
 */
export interface PolicyResponse {
  epoch: string;
  version: number;
  /** `callersDigest(callers)`; the service checks it against the rules it receives. */
  digest: string;
  /** Absent when the request's epoch, version and digest all equal the answer's (nothing to send). */
  callers?: Record<string, CallerRule[]>;
}
