import { randomBytes } from 'node:crypto';

/**
 * Options for {@link RampartError}.
 */
export interface RampartErrorOptions {
  /** HTTP status the error maps to when it reaches a client. Defaults to 500. */
  status?: number;
  /** The underlying reason. Never sent to clients; logged and audited. */
  cause?: unknown;
  /** Extra fields for logs (never for clients). */
  detail?: Record<string, unknown>;
}

/**
 * Base error of every Rampart component. `code` is stable and is what tests and callers match on;
 * `message` is a fixed, boring sentence for security failures (the reason lives in `cause`/`detail`).
 * `expose` says whether the message may be shown to a client (only for 4xx).
 */
export class RampartError extends Error {
  readonly code: string;
  readonly status: number;
  readonly expose: boolean;
  readonly detail: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: RampartErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RampartError';
    this.code = code;
    this.status = options.status ?? 500;
    this.expose = this.status < 500;
    this.detail = options.detail;
  }
}

/** An identifier that ties a client-visible error to its log line (Caddy's `error_id`). */
export function newErrorId(): string {
  return randomBytes(9).toString('base64url');
}

/** True when `value` is a RampartError with the given code. */
export function isRampartError(value: unknown, code?: string): value is RampartError {
  return value instanceof RampartError && (code === undefined || value.code === code);
}
