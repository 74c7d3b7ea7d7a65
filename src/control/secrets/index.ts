/**
 * The secrets module (issue 6, DESIGN.md "Secrets"), in the order a request meets it:
 *
 * 1. acl.ts            the manifest's grants, by SPIFFE ID, deny by default
 * 2. service.ts        read / reveal / set / promote / rollback / history / list / rotateKek
 * 3. labels.ts         the current / previous / pending state machine (pure)
 * 4. envelope.ts       per-version data keys, XChaCha20-Poly1305, KEK wrapping, the KEK check value
 * 5. audit.ts          events with HMAC references, fail-closed append
 * 6. store.ts          the storage interface; sqlite-store.ts (default), postgres-store.ts
 *
 * served.ts opens the service the control plane serves (api/secrets-routes.ts: `POST /v1/secrets/read`;
 * api/operator-secrets-routes.ts: the operator's commands), with the control plane's audit log as sink;
 * client-cache.ts is the SDK side (`secrets.get(name)`, src/sdk/secrets.ts).
 */
export { type AclManifest, compileSecretsAcl, type SecretsAcl } from './acl.ts';
export {
  type AuditSink,
  SECRETS_ACTIONS,
  SECRETS_COMPONENT,
  type SecretsAction,
  type SecretsActor,
  type SecretsAuditEvent,
  secretRef,
} from './audit.ts';
export { type CachedSecret, createSecretCache, type SecretCache, type SecretCacheOptions } from './client-cache.ts';
export { SECRET_NAME, SECRETS_API_DEFAULTS, SECRETS_DEFAULTS, SECRETS_FILES } from './defaults.ts';
export { SEC_ERRORS, type SecretsErrorCode } from './errors.ts';
export { LABELS, type Label, type Labels } from './labels.ts';
export { openPostgresSecretsStore, type PostgresStoreOptions } from './postgres-store.ts';
export {
  type OperatorSecrets,
  openServedSecrets,
  type ServedSecrets,
  type ServedSecretsOptions,
} from './served.ts';
export {
  openSecretsService,
  type RequestContext,
  type SecretsService,
  type SecretsServiceOptions,
  type SecretValue,
  type SetOptions,
  type VersionInfo,
  type VersionSelector,
  type WriteResult,
  wipeSecret,
} from './service.ts';
export { openSqliteSecretsStore, type SqliteStoreOptions } from './sqlite-store.ts';
export type { SecretRecord, SecretsStore, VersionMeta } from './store.ts';
