/**
 * Gateway limits and timeouts, in one place, each with the reason for its value. Node's own defaults
 * are not safe for an edge (headersTimeout 60 s, requestTimeout 300 s, no connection cap: DESIGN.md).
 */
export const GATEWAY_LIMITS = {
  /** Slowloris bound: a client has 10 s to finish sending headers (nginx client_header_timeout is 60 s; we are stricter). */
  headersTimeoutMs: 10_000,
  /** Whole-request bound for receiving a request, body included. */
  requestTimeoutMs: 30_000,
  /** Idle keep-alive connections are closed after 5 s (Node's default; below common LB idle timeouts of 60 s). */
  keepAliveTimeoutMs: 5_000,
  /** 16 KiB of headers: Node's default, also nginx's large_client_header_buffers order of magnitude. */
  maxHeaderBytes: 16_384,
  /** 100 header lines: more is abuse, not an application. */
  maxHeadersCount: 100,
  /** Request-target length; longer answers 414 (common proxies cap near 8 KiB). */
  maxTargetLength: 8_192,
  /** 1 MiB request bodies by default (nginx client_max_body_size defaults to 1 MiB). */
  maxBodyBytes: 1_048_576,
  /** Simultaneous connections per gateway process. */
  maxConnections: 10_000,
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
} as const;
