import type { OutgoingHttpHeaders } from 'node:http';
import { RampartError } from '../core/errors.ts';

/** The public, fixed error word for each status the gateway produces (never the internal reason). */
export const PUBLIC_ERRORS: Readonly<Record<number, string>> = {
  400: 'bad_request',
  401: 'invalid_token',
  403: 'insufficient_scope',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'request_timeout',
  413: 'payload_too_large',
  414: 'uri_too_long',
  429: 'rate_limited',
  431: 'headers_too_large',
  500: 'internal_error',
  502: 'bad_gateway',
  503: 'unavailable',
  504: 'gateway_timeout',
};

export interface DenialDetail {
  /** Reason code for logs, metrics and the decision event. Bounded set per stage. */
  reason: string;
  /** Extra response headers (WWW-Authenticate, Retry-After, Allow). */
  headers?: OutgoingHttpHeaders;
}

/**
 * A request the gateway refuses. `code` is the stable GW_ERR_* code; the client sees only the status,
 * the public error word and an `error_id` that also appears in the log.
 */
export function deny(status: number, code: string, detail: DenialDetail, cause?: unknown): RampartError {
  return new RampartError(code, PUBLIC_ERRORS[status] ?? 'error', { status, detail: { ...detail }, cause });
}

export function denialDetail(err: RampartError): DenialDetail {
  const detail = err.detail as Partial<DenialDetail> | undefined;
  return { reason: detail?.reason ?? err.code.toLowerCase(), headers: detail?.headers ?? {} };
}
