import { RESERVED_SERVICE_NAMES } from '../../config/reserved.ts';
import { POLICY_DEFAULTS } from '../policy/defaults.ts';
import { POLICY_DIGEST_PATTERN, POLICY_EPOCH_PATTERN } from '../policy/digest.ts';
import { POLICY_ERRORS, policyError } from '../policy/errors.ts';
import type { ServicePolicy } from '../policy/policy-store.ts';
import { POLICY_ROUTE, type PolicyRequest, type PolicyResponse } from '../policy/wire.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';
import { type ApiRoutes, apiCaller, integerField, onlyFields, parseJson } from './request.ts';

export interface PolicyRoutesOptions {
  /** The policy store (control/policy/policy-store.ts `PolicyStore`), or anything that answers the same. */
  policy: { policyOf(service: string): ServicePolicy | null };
  /** The control plane's trust domain: callers' SVIDs must belong to it. */
  trustDomain: string;
}

const REQUEST_FIELDS: readonly string[] = ['epoch', 'version', 'digest'] satisfies (keyof PolicyRequest)[];

/**
 * `POST /v1/policy` `{epoch, version, digest}` (what the service holds, wire.ts) over mutual TLS: the
 * calling service's own inbound policy with the epoch, version and digest it has now (issue 4, live
 * policy updates). The caller is the verified client certificate's SPIFFE ID and nothing in the
 * request: no body field can name another service, so a workload never sees who may call anyone else.
 * Refusals: no valid SVID 401 (before the body is parsed), a component or non-service identity 403
 * POLICY_ERR_FORBIDDEN, a malformed body, a missing field or any other field 400, no policy loaded yet
 * 503 POLICY_ERR_UNAVAILABLE. The answer carries no rules only when the service holds exactly what is
 * served: same epoch, same version and same digest.
 */
export function policyRoutes(options: PolicyRoutesOptions): ApiRoutes {
  const { policy, trustDomain } = options;
  return {
    [POLICY_ROUTE]: {
      maxBodyBytes: POLICY_DEFAULTS.maxRequestBytes,
      handle: async (req, body): Promise<PolicyResponse> => {
        const caller = apiCaller(req, trustDomain);
        // Components (gateway, control, identity) enforce their part of the manifest themselves.
        if (caller.service === null || RESERVED_SERVICE_NAMES.includes(caller.service)) {
          throw policyError(POLICY_ERRORS.forbidden, { caller: caller.spiffeId.id });
        }
        const json = parseJson(body);
        // Unknown fields are refused, not ignored: nothing in the body may look like it selects a service.
        onlyFields(json, REQUEST_FIELDS);
        const held: PolicyRequest = {
          epoch: epochField(json),
          version: integerField(json, 'version'),
          digest: digestField(json),
        };
        const current = policy.policyOf(caller.service);
        if (!current) throw policyError(POLICY_ERRORS.unavailable);
        const served = { epoch: current.epoch, version: current.version, digest: current.digest };
        if (held.epoch === served.epoch && held.version === served.version && held.digest === served.digest) {
          return served;
        }
        return { ...served, callers: current.callers };
      },
    },
  };
}

/** `epoch`: null (the launcher's snapshot) or an epoch's shape, or 400 naming the field. */
function epochField(json: Record<string, unknown>): string | null {
  const value = json['epoch'];
  if (value === null) return null;
  if (typeof value !== 'string' || !POLICY_EPOCH_PATTERN.test(value)) {
    throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: 'epoch' });
  }
  return value;
}

/** `digest`: 64 lowercase hex digits, or 400 naming the field. */
function digestField(json: Record<string, unknown>): string {
  const value = json['digest'];
  if (typeof value !== 'string' || !POLICY_DIGEST_PATTERN.test(value)) {
    throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: 'digest' });
  }
  return value;
}
