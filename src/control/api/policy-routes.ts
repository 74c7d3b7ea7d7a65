import { RESERVED_SERVICE_NAMES } from '../../config/reserved.ts';
import { POLICY_DEFAULTS } from '../policy/defaults.ts';
import { POLICY_ERRORS, policyError } from '../policy/errors.ts';
import type { ServicePolicy } from '../policy/policy-store.ts';
import { POLICY_ROUTE, type PolicyResponse } from '../policy/wire.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';
import { type ApiRoutes, apiCaller, integerField, parseJson } from './request.ts';

export interface PolicyRoutesOptions {
  /** The policy store (control/policy/policy-store.ts `PolicyStore`), or anything that answers the same. */
  policy: { policyOf(service: string): ServicePolicy | null };
  /** The control plane's trust domain: callers' SVIDs must belong to it. */
  trustDomain: string;
}

/**
 * `POST /v1/policy` `{knownVersion}` over mutual TLS: the calling service's own inbound policy and the
 * system's policy version (issue 4, live policy updates). The caller is the verified client
 * certificate's SPIFFE ID and nothing in the request: no body field can name another service, so a
 * workload never sees who may call anyone else. Refusals: no valid SVID 401 (before the body is parsed),
 * a component or non-service identity 403 POLICY_ERR_FORBIDDEN, a malformed body or any field but
 * `knownVersion` 400, no policy
 * loaded yet 503 POLICY_ERR_UNAVAILABLE. When `knownVersion` is the current version the answer carries
 * no rules.
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
        if (Object.keys(json).some((key) => key !== 'knownVersion')) {
          throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'unknown field' });
        }
        const knownVersion = integerField(json, 'knownVersion');
        const current = policy.policyOf(caller.service);
        if (!current) throw policyError(POLICY_ERRORS.unavailable);
        if (knownVersion === current.version) return { version: current.version };
        return { version: current.version, callers: current.callers };
      },
    },
  };
}
