/**
 * Gateway constants that are not manifest settings, in one place, each with the reason for its value.
 * The public listener's limits and timeouts are manifest settings (`gateway.limits`, defaults and
 * reasons in src/config/defaults.ts); what is here is either about upstreams or about how the gateway
 * enforces those limits.
 */
export const GATEWAY_LIMITS = {
  /** Upstream connect timeout: loopback connects in microseconds; 2 s means the service is not there. */
  upstreamConnectTimeoutMs: 2_000,
  /** Time for an upstream to send response headers. */
  upstreamHeadersTimeoutMs: 30_000,
  /** Idle time allowed between upstream body chunks. */
  upstreamBodyTimeoutMs: 30_000,
  /** Keep-alive connections per upstream pool. */
  upstreamConnections: 128,
  /** Most keys the in-memory rate limiter tracks per route before evicting (≈100 bytes per key). */
  rateLimitMaxKeys: 1_000_000,
  /**
   * Longest pause between Node's sweeps for expired header and request timers. Node checks them on an
   * interval (30 s by default, which lets a slowloris socket live 30 s past `headersTimeoutMs`); the
   * gateway sweeps every quarter of the shortest timeout, at most this often apart.
   */
  maxConnectionsCheckIntervalMs: 1_000,
  /** Shortest sweep interval: 2,000 sockets are walked per sweep, so not more often than this. */
  minConnectionsCheckIntervalMs: 100,
  /**
   * A connection with nothing moving in either direction for this long is closed. It bounds the
   * slow-read attack (a client that stops reading a response): the request timeouts only cover the
   * request. Above the upstream header and body timeouts, so a live proxied exchange never trips it.
   */
  socketIdleTimeoutMs: 60_000,
  /**
   * After a parser refusal the error response gets this long to flush before the socket is destroyed
   * (a client that never reads must not keep a half-closed socket, and its slot, forever).
   */
  refusalFlushMs: 1_000,
  /**
   * Pipelined requests queued on one connection before the gateway stops reading from it. They are
   * served one at a time; without a bound, one packet of tiny requests would queue thousands.
   */
  maxPipelinedRequests: 16,
  /**
   * Certificate files are watched; a change is acted on once nothing changed for this long, because
   * certificate managers write the certificate and the key as separate files (or swap a symlink).
   */
  certificateReloadDebounceMs: 250,
  /**
   * Per-client connection counting groups IPv6 clients by their /64: one subscriber usually holds a
   * whole /64 (RFC 6177), so counting single IPv6 addresses would be no cap at all.
   */
  ipv6ClientPrefixHextets: 4,
} as const;
