import type { GcraDecision, GcraPolicy } from './gcra.ts';

/**
 * Where rate-limit state lives. One backend serves every route of a gateway: `routeId` and `key` are
 * kept apart by the backend (never concatenated ambiguously), so routes never share a budget.
 *
 * `take` decides one request and, when it is admitted, spends its quota; a denied request changes
 * nothing (Tyk#1876). The in-memory table answers synchronously, so the common path costs no promise;
 * Redis answers with a promise. A backend that cannot decide rejects (or throws) with
 * `GW_ERR_RATE_LIMIT_STORE_DOWN`, and the stage fails closed (503).
 */
export interface RateLimitBackend {
  take(routeId: string, key: string, policy: GcraPolicy, now: number): GcraDecision | Promise<GcraDecision>;
  /** Releases connections and timers. Idempotent. */
  close?(): Promise<void>;
}
