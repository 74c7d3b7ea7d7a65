import type { CallerRule } from '../../core/runtime.ts';

/**
 * What travels between the control plane and a service for live policy updates (`POST /v1/policy`).
 * Types only, so the SDK can import them without the manifest loader.
 */

/** Route of the control plane API that answers a service's policy. */
export const POLICY_ROUTE = 'POST /v1/policy';

/** The request body: the version the service holds (0 when it holds only the launcher's snapshot). */
export interface PolicyRequest {
  knownVersion: number;
}

/**
 * The answer: the system's policy version and, unless the caller already holds exactly that version,
 * the caller's own inbound policy (caller SPIFFE ID → rules). Never another service's.
 */
export interface PolicyResponse {
  version: number;
  /** Absent when `knownVersion` equals `version` (nothing to send). */
  callers?: Record<string, CallerRule[]>;
}
