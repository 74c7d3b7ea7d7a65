/**
 * The control plane's HTTPS API (issue 4 "Attestation") and its clients. The flow, in order:
 *
 * 1. key      workload-key.ts        a workload makes its own P-256 key and a CSR (the key never leaves it)
 * 2. token    client.ts              the launcher mints a join token per process (launcher credential)
 * 3. issue    server.ts              join token + CSR → first SVID; server-certificate.ts is the API's own
 * 4. keep     svid-source.ts         the workload checks the SVID is its own, renews at ½ over mTLS
 * 5. trust    client.ts              `spiffeServerCheck`: peers are checked by SPIFFE ID, not host name
 */
export {
  acknowledgeBundle,
  type BundleResponse,
  type ControlTarget,
  controlRequest,
  requestBundle,
  requestJoinToken,
  requestRenewal,
  requestSvid,
  type SvidResponse,
  spiffeServerCheck,
} from './client.ts';
export { COMPONENT_SERVICE_NAMES, CONTROL_API_DEFAULTS, SVID_RENEWAL_DEFAULTS } from './defaults.ts';
export { CONTROL_API_ERRORS } from './errors.ts';
export {
  type ControlEndpoint,
  OPERATOR_FILES,
  processAlive,
  readControlEndpoint,
  readOperatorCredential,
  removeOperatorFiles,
  writeControlEndpoint,
  writeOperatorCredential,
} from './operator-access.ts';
export { createOperatorRoutes, type OperatorRoutesOptions, type RotateRequest } from './operator-routes.ts';
export {
  type ApiCaller,
  type ApiHandler,
  type ApiRoute,
  type ApiRoutes,
  apiCaller,
  clientCertificate,
  integerField,
  parseJson,
  stringField,
} from './request.ts';
export { type ApiRefusal, type ControlApi, type ControlApiOptions, createControlApi } from './server.ts';
export { createServerCertificate, type ServerCertificate } from './server-certificate.ts';
export { type CurrentSvid, createSvidSource, type SvidSource, type SvidSourceOptions } from './svid-source.ts';
export { createWorkloadKey, type WorkloadKey } from './workload-key.ts';
