import { RampartError } from '../core/errors.ts';

/** Stable codes of identity-provider failures (tests and callers match on these, never on messages). */
export const IDP_ERRORS = {
  /** A username or client id that is already taken. */
  conflict: 'IDP_ERR_CONFLICT',
  /** No such account or client (admin API). */
  notFound: 'IDP_ERR_NOT_FOUND',
  /** A password that breaks the rules (length, blocklist); `detail.reason` says which. */
  weakPassword: 'IDP_ERR_WEAK_PASSWORD',
  /** A username, role, scope or client field that is not acceptable; `detail.field` names it. */
  invalidInput: 'IDP_ERR_INVALID_INPUT',
  /** Client metadata refused (redirect URI rules, grant types, auth method). */
  invalidClient: 'IDP_ERR_INVALID_CLIENT',
  /** The store failed or holds something this version cannot read. */
  store: 'IDP_ERR_STORE',
  /** The provider's configuration cannot work (issuer, audience, keys). */
  config: 'IDP_ERR_CONFIG',
  /** Key rotation refused: the next key was not published long enough. */
  rotationTooEarly: 'IDP_ERR_ROTATION_TOO_EARLY',
  /** Admin API: no or invalid credentials (401). */
  unauthenticated: 'IDP_ERR_UNAUTHENTICATED',
  /** Admin API: valid credentials without the admin right (403). */
  forbidden: 'IDP_ERR_FORBIDDEN',
} as const;

export function idpError(
  code: (typeof IDP_ERRORS)[keyof typeof IDP_ERRORS],
  message: string,
  options: { status?: number; cause?: unknown; detail?: Record<string, unknown> } = {},
): RampartError {
  return new RampartError(code, message, { status: options.status ?? 400, ...options });
}
