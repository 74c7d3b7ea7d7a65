import { RampartError } from '../../core/errors.ts';

/**
 * Stable codes of the policy module. Clients see the code and a fixed word; the detail goes to logs.
 */
export const POLICY_ERRORS = {
  /** The caller is not a service (a component such as the gateway, or a non-`svc/` SPIFFE ID). */
  forbidden: 'POLICY_ERR_FORBIDDEN',
  /** No valid manifest has been loaded since the control plane started and none was persisted. */
  unavailable: 'POLICY_ERR_UNAVAILABLE',
  /** The persisted policy state in the control plane's data directory is unreadable or malformed. */
  state: 'POLICY_ERR_STATE',
} as const;

const STATUS: Readonly<Record<string, number>> = {
  [POLICY_ERRORS.forbidden]: 403,
  [POLICY_ERRORS.unavailable]: 503,
  [POLICY_ERRORS.state]: 500,
};

const MESSAGE: Readonly<Record<string, string>> = {
  // Read by an operator when the control plane refuses to start; `detail` names the file and the reason.
  [POLICY_ERRORS.state]:
    'the persisted policy state (policy.json in the control plane data directory) is unreadable or malformed: restore it, or remove it to start a new policy history at version 1 (running services take it)',
};

/** A RampartError with a policy code and a fixed message. */
export function policyError(
  code: (typeof POLICY_ERRORS)[keyof typeof POLICY_ERRORS],
  detail?: Record<string, unknown>,
  cause?: unknown,
): RampartError {
  return new RampartError(code, MESSAGE[code] ?? 'policy request refused', {
    status: STATUS[code] ?? 500,
    detail,
    cause,
  });
}
