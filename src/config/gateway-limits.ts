import type { GatewayLimits } from './model.ts';

/** What one `gateway.limits` key may be: its bounds, and how editors describe it. */
export interface LimitSpec {
  title: string;
  description: string;
  minimum: number;
  maximum: number;
}

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
const SECOND = 1000;
const MINUTE = 60 * SECOND;

/**
 * Timeouts: at least 100 ms (less would cut off healthy clients on any real network) and at most
 * 10 minutes (longer is no bound against slow clients). 0, which Node reads as "no timeout", is
 * outside the range on purpose.
 */
const timeout = (title: string, description: string): LimitSpec => ({
  title,
  description: `${description} In milliseconds, 100 to 600000 (10 minutes).`,
  minimum: 100,
  maximum: 10 * MINUTE,
});

/**
 * The bounds of every gateway limit (defaults and their reasons: defaults.ts). The schema publishes
 * them, and normalize.ts reads them to skip out-of-range values (already reported) in cross-checks.
 * Keys are exactly those of {@link GatewayLimits}: the type makes a missing or extra key an error.
 */
export const LIMIT_SPECS: Readonly<Record<keyof GatewayLimits, LimitSpec>> = Object.freeze({
  maxBodyBytes: {
    title: 'Maximum body size',
    description: 'Largest request body in bytes; larger answers 413. 1 to 1073741824 (1 GiB).',
    minimum: 1,
    maximum: GIB,
  },
  maxHeaderBytes: {
    title: 'Maximum header size',
    description:
      'Largest request line plus headers, in bytes; larger answers 431. 1024 to 262144 (256 KiB). ' +
      'Access tokens may be up to 8 KB, so keep room for them.',
    minimum: KIB,
    maximum: 256 * KIB,
  },
  maxHeadersCount: {
    title: 'Maximum header count',
    description: 'Most header lines in one request; more answers 431. 8 to 1000.',
    minimum: 8,
    maximum: 1000,
  },
  maxTargetLength: {
    title: 'Maximum request-target length',
    description:
      'Longest request-target (path and query) in bytes; longer answers 414. 256 to 65536, and less than `maxHeaderBytes`.',
    minimum: 256,
    maximum: 64 * KIB,
  },
  headersTimeoutMs: timeout(
    'Headers timeout',
    'Time a client has to send the request line and headers (slowloris bound). At most `requestTimeoutMs`.',
  ),
  requestTimeoutMs: timeout('Request timeout', 'Time a client has to send the whole request, body included.'),
  keepAliveTimeoutMs: timeout('Keep-alive timeout', 'An idle keep-alive connection is closed after this time.'),
  tlsHandshakeTimeoutMs: timeout('TLS handshake timeout', 'Time a client has to complete the TLS handshake.'),
  maxConnections: {
    title: 'Maximum connections',
    description: 'Open connections per gateway worker; further connections are refused. 1 to 1000000.',
    minimum: 1,
    maximum: 1_000_000,
  },
  maxConnectionsPerClient: {
    title: 'Maximum connections per client',
    description:
      'Open connections from one client address, so one host cannot take every slot. 1 to 1000000, ' +
      'and at most `maxConnections`.',
    minimum: 1,
    maximum: 1_000_000,
  },
});

/** The limit keys in declaration order (the order of {@link GatewayLimits}). */
export const LIMIT_KEYS = Object.freeze(Object.keys(LIMIT_SPECS) as (keyof GatewayLimits)[]);

/** Whether `value` is a whole number inside the bounds of limit `key`. */
export function limitInRange(key: keyof GatewayLimits, value: unknown): value is number {
  const spec = LIMIT_SPECS[key];
  return Number.isInteger(value) && (value as number) >= spec.minimum && (value as number) <= spec.maximum;
}

/** Bounds of `gateway.workers`: 0 (one per core) to 64 (past that, threads only contend for cores). */
export const WORKERS_MAX = 64;
