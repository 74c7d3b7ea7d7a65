import { RampartError } from '../../core/errors.ts';

/**
 * Stable codes of the secrets module. Messages are fixed and boring; what went wrong is in `detail`
 * and `cause` (logs and audit). No error of this module ever carries a secret's value: values never
 * reach an error's message, detail or cause (the crypto errors underneath are libsodium's, which name
 * no data).
 */
export const SEC_ERRORS = {
  /** Options are invalid (a store path or schema, a timeout, an audit sink without `append`). */
  config: 'SEC_ERR_CONFIG',
  /**
   * The store cannot be opened with this key-encryption key: the KEK is missing, unreadable, malformed,
   * or another KEK's (the store's check value does not open). `detail.reason` says which; nothing is
   * decrypted until it is fixed.
   */
  sealed: 'SEC_ERR_SEALED',
  /** The caller may not read this secret (deny by default: not granted in the manifest, or not a service). */
  forbidden: 'SEC_ERR_FORBIDDEN',
  /** No such secret, or no version under the requested label or number. */
  notFound: 'SEC_ERR_NOT_FOUND',
  /** A secret name that does not match the manifest's rule (`^[a-z][a-z0-9-]{0,62}$`). */
  name: 'SEC_ERR_NAME',
  /** A value that is not bytes, is empty, or is larger than the limit. */
  value: 'SEC_ERR_VALUE',
  /** A label or version selector that is not `current`/`previous`/`pending` or a positive version. */
  selector: 'SEC_ERR_SELECTOR',
  /** The label move is impossible from the present state (`detail.reason`: no pending, no previous, pending exists). */
  label: 'SEC_ERR_LABEL',
  /** Another writer changed the secret between this writer's read and its commit: retry. */
  conflict: 'SEC_ERR_CONFLICT',
  /** A stored version failed authentication (altered, moved to another row, or wrapped for another place). */
  decrypt: 'SEC_ERR_DECRYPT',
  /** The audit log did not take the event (failed or timed out): the operation was refused (fail closed). */
  auditUnavailable: 'SEC_ERR_AUDIT_UNAVAILABLE',
  /** The database failed. */
  store: 'SEC_ERR_STORE',
  /** The database was written by a schema this code does not know. */
  schema: 'SEC_ERR_SCHEMA',
  /** KEK rotation was refused or failed (same key, a row that does not open); nothing was changed. */
  kekRotation: 'SEC_ERR_KEK_ROTATION',
  /** The service was closed. */
  closed: 'SEC_ERR_CLOSED',
} as const;

/** One of {@link SEC_ERRORS}. */
export type SecretsErrorCode = (typeof SEC_ERRORS)[keyof typeof SEC_ERRORS];

/** 403 for access, 404/400/409 for requests, 503 while sealed or without audit, else 500. */
const STATUS: Readonly<Record<string, number>> = {
  [SEC_ERRORS.sealed]: 503,
  [SEC_ERRORS.forbidden]: 403,
  [SEC_ERRORS.notFound]: 404,
  [SEC_ERRORS.name]: 400,
  [SEC_ERRORS.value]: 400,
  [SEC_ERRORS.selector]: 400,
  [SEC_ERRORS.label]: 409,
  [SEC_ERRORS.conflict]: 409,
  [SEC_ERRORS.auditUnavailable]: 503,
  [SEC_ERRORS.store]: 503,
};

/** Fixed messages. A refused read reads the same whether or not the secret exists. */
const MESSAGE: Readonly<Record<string, string>> = {
  [SEC_ERRORS.config]: 'invalid secrets configuration',
  [SEC_ERRORS.sealed]: 'secrets store is sealed',
  [SEC_ERRORS.forbidden]: 'secret access denied',
  [SEC_ERRORS.notFound]: 'secret not found',
  [SEC_ERRORS.name]: 'invalid secret name',
  [SEC_ERRORS.value]: 'invalid secret value',
  [SEC_ERRORS.selector]: 'invalid secret version selector',
  [SEC_ERRORS.label]: 'secret version labels cannot move that way',
  [SEC_ERRORS.conflict]: 'secret was changed concurrently',
  [SEC_ERRORS.decrypt]: 'secret version failed authentication',
  [SEC_ERRORS.auditUnavailable]: 'audit log unavailable',
  [SEC_ERRORS.store]: 'secrets store failed',
  [SEC_ERRORS.schema]: 'secrets store schema is not supported',
  [SEC_ERRORS.kekRotation]: 'key-encryption key rotation failed',
  [SEC_ERRORS.closed]: 'secrets service is closed',
};

/** A RampartError with a secrets code, its status and its fixed message. */
export function secError(code: SecretsErrorCode, detail?: Record<string, unknown>, cause?: unknown): RampartError {
  return new RampartError(code, MESSAGE[code] ?? 'secrets error', {
    status: STATUS[code] ?? 500,
    detail: { ...detail },
    cause,
  });
}

/** True for an error this module raised (a SEC_ERR_* code), which passes through wrappers unchanged. */
export function isSecretsError(err: unknown): err is RampartError {
  return err instanceof RampartError && err.code.startsWith('SEC_ERR_');
}
