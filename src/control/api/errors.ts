import { RampartError } from '../../core/errors.ts';

/**
 * Codes of the control plane API itself (the CA's own failures keep their CA_ERR_* codes). Clients see
 * the code and a fixed word, never the detail.
 */
export const CONTROL_API_ERRORS = {
  /** Not a route of the API, or a method it does not serve. */
  notFound: 'CA_ERR_API_NOT_FOUND',
  /** Body not JSON, wrong content type, or fields missing or of the wrong type. */
  badRequest: 'CA_ERR_API_BAD_REQUEST',
  /** Body larger than the limit. */
  tooLarge: 'CA_ERR_API_TOO_LARGE',
  /** Missing or wrong bearer credential: the launcher's (join tokens) or the operator's (CA status, rotation). */
  unauthorized: 'CA_ERR_API_UNAUTHORIZED',
  /** An authenticated caller whose identity may not use this route (the edge certificate: the gateway only). */
  forbidden: 'CA_ERR_API_FORBIDDEN',
  /** A renewal without a client certificate that chains to the bundle. */
  noClientCertificate: 'CA_ERR_API_NO_CLIENT_CERTIFICATE',
  /** Client side: the control plane could not be reached or answered something unusable. */
  unavailable: 'CA_ERR_API_UNAVAILABLE',
  /** Client side: the server's or the issued certificate's SPIFFE ID is not the one expected. */
  wrongIdentity: 'CA_ERR_API_WRONG_IDENTITY',
} as const;

const STATUS: Readonly<Record<string, number>> = {
  [CONTROL_API_ERRORS.notFound]: 404,
  [CONTROL_API_ERRORS.badRequest]: 400,
  [CONTROL_API_ERRORS.tooLarge]: 413,
  [CONTROL_API_ERRORS.unauthorized]: 401,
  [CONTROL_API_ERRORS.forbidden]: 403,
  [CONTROL_API_ERRORS.noClientCertificate]: 401,
  [CONTROL_API_ERRORS.unavailable]: 503,
  [CONTROL_API_ERRORS.wrongIdentity]: 502,
};

/** A RampartError with an API code and a fixed message. */
export function apiError(
  code: (typeof CONTROL_API_ERRORS)[keyof typeof CONTROL_API_ERRORS],
  detail?: Record<string, unknown>,
  cause?: unknown,
): RampartError {
  return new RampartError(code, 'control plane request refused', { status: STATUS[code] ?? 500, detail, cause });
}
