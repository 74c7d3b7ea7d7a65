import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

/**
 * Paths pino removes from every log line. Credentials never reach a log: request and response
 * headers that carry them, any field a component names `token`, `password`, `secret` or `value`
 * of a secret, and database connection strings (STYLE.md, State and logging).
 */
export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'authorization',
  'cookie',
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'idToken',
  'id_token',
  'password',
  'secret',
  'clientSecret',
  'client_secret',
  'secretValue',
  '*.token',
  '*.password',
  '*.secret',
  '*.authorization',
  '*.access_token',
  '*.refresh_token',
  '*.client_secret',
  // A database URL may carry a password (`control.store`, `identity.builtin.store`): pg's option name.
  'connectionString',
  '*.connectionString',
];

export interface CreateLoggerOptions {
  /** Component or service name; becomes the `name` field of every line. */
  name: string;
  level?: string;
  /** Where lines go; stdout by default. Tests pass a stream to read what was logged. */
  destination?: DestinationStream;
  base?: Record<string, unknown>;
  /**
   * Redaction of credential paths (default true). Turn it off only for a logger whose every field is
   * fixed by code and never carries request data that could hold a credential (the gateway's access log).
   */
  redact?: boolean;
}

/**
 * The one logger factory of Rampart: JSON lines with redaction. Components create one at start and
 * hand children (`logger.child({ reqId })`) to the code that serves a request.
 */
export function createLogger(options: CreateLoggerOptions): Logger {
  const config: LoggerOptions = {
    name: options.name,
    level: options.level ?? process.env['RAMPART_LOG_LEVEL'] ?? 'info',
    base: { pid: process.pid, ...options.base },
    ...(options.redact === false ? {} : { redact: { paths: [...REDACT_PATHS], censor: '[redacted]' } }),
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}
