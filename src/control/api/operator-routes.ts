import type { CaStatus, CertificateAuthority, RotationResult } from '../ca/index.ts';
import { CONTROL_API_DEFAULTS } from './defaults.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';
import { createOperatorAuthorization } from './operator-access.ts';
import { type ApiRoutes, onlyFields, parseJson } from './request.ts';

/** Options of {@link createOperatorRoutes}. */
export interface OperatorRoutesOptions {
  ca: Pick<CertificateAuthority, 'status' | 'rotateNow'>;
  /** The operator credential the control plane wrote at start (operator-access.ts). */
  credential: string;
  /**
   * Called after a forced rotation, before the answer is sent: the control plane republishes
   * `bundle.pem` and installs the new bundle in its TLS context at once rather than at its next tick.
   * Must not throw.
   */
  onRotated?: (result: RotationResult) => void;
}

/** Body of `POST /v1/ca/rotate`. */
export interface RotateRequest {
  /** Activate at once (key compromise) instead of after the bundle has propagated. */
  immediate?: boolean;
}

/**
 * The body of an operator route: absent, or a JSON object with only the fields `allowed`. Unknown
 * fields are refused: a misspelled `immediat` must not silently mean a scheduled rotation.
 */
export function operatorBody(body: Buffer | null, allowed: readonly string[]): Record<string, unknown> {
  return body === null ? {} : onlyFields(parseJson(body), allowed);
}

/**
 * The operator's routes of the control plane API (`rampart ca status|rotate` while the system runs):
 *
 * | route | authenticated by | does |
 * | --- | --- | --- |
 * | `POST /v1/ca/status` `{}` | operator credential (bearer) | the CA's {@link CaStatus} |
 * | `POST /v1/ca/rotate` `{immediate?}` | operator credential (bearer) | forces a rotation; {@link RotationResult} |
 *
 * The credential is checked (operator-access.ts `createOperatorAuthorization`, in constant time) before
 * the body is parsed. They go through the
 * running control plane because it alone owns the CA's state while it runs: a second writer on the
 * database would leave its caches (bundle, unwrapped keys) stale.
 */
export function createOperatorRoutes(options: OperatorRoutesOptions): ApiRoutes {
  const authorize = createOperatorAuthorization(options.credential);
  const maxBodyBytes = CONTROL_API_DEFAULTS.maxOperatorBodyBytes;
  return {
    'POST /v1/ca/status': {
      maxBodyBytes,
      handle: async (req, body): Promise<CaStatus> => {
        authorize(req);
        operatorBody(body, []);
        return options.ca.status();
      },
    },
    'POST /v1/ca/rotate': {
      maxBodyBytes,
      handle: async (req, body): Promise<RotationResult> => {
        authorize(req);
        const { immediate } = operatorBody(body, ['immediate']);
        if (immediate !== undefined && typeof immediate !== 'boolean') {
          throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: 'immediate' });
        }
        const result = await options.ca.rotateNow({ immediate: immediate === true });
        try {
          options.onRotated?.(result);
        } catch {
          // The rotation is done and durable; the ticker republishes within seconds.
        }
        return result;
      },
    },
  };
}
