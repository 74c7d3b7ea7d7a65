/**
 * The system's policy: who may call whom, compiled from the manifest and kept live (issue 4). The
 * flow, in order:
 *
 * 1. compile   compile.ts        manifest → every service's inbound policy, canonical (the launcher's too)
 * 2. version   state-file.ts     the version and last good policy, persisted before they are served;
 *              digest.ts         canonical rules, digests, and the epoch that names each run's history
 * 3. keep      policy-store.ts   reloads on SIGHUP or a file change; a bad manifest keeps the last good
 * 4. serve     ../api/policy-routes.ts   `POST /v1/policy`: a service gets its own policy, by its SVID
 * 5. enforce   ../../sdk/policy-source.ts  each service polls and swaps its decision function
 */
export {
  type CallerRules,
  compileSystemPolicy,
  inboundCallers,
  inboundPolicy,
  LAUNCH_POLICY_VERSION,
  policyDigest,
  type SystemPolicy,
} from './compile.ts';
export { POLICY_DEFAULTS } from './defaults.ts';
export {
  callersDigest,
  canonicalCallers,
  newPolicyEpoch,
  POLICY_DIGEST_PATTERN,
  POLICY_EPOCH_PATTERN,
} from './digest.ts';
export { POLICY_ERRORS, policyError } from './errors.ts';
export { type PolicyReloadResult, PolicyStore, type PolicyStoreOptions, type ServicePolicy } from './policy-store.ts';
export { POLICY_STATE_FILE, type PolicyState, readPolicyState, writePolicyState } from './state-file.ts';
export { POLICY_ROUTE, type PolicyRequest, type PolicyResponse } from './wire.ts';
