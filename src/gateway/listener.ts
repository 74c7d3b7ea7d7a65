import { type Server as HttpServer, type ServerOptions, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { type AddressInfo, isIPv6, type Socket } from 'node:net';
import type { GatewayLimits } from '../config/model.ts';
import { newErrorId } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { DecisionEvent, DecisionSink } from './decision-sink.ts';
import { GATEWAY_LIMITS } from './defaults.ts';
import { PUBLIC_ERRORS } from './deny.ts';
import type { GatewayMetrics } from './metrics.ts';

/** A listener the gateway serves on: plain HTTP or HTTPS (both are `http.Server`s underneath). */
export type Listener = HttpServer | HttpsServer;

export interface ListenOptions {
  /**
   * SO_REUSEPORT: several gateways (one per worker thread) bind the same address and port, and the
   * kernel spreads new connections across them (Linux; see `net.Server#listen`).
   */
  reusePort?: boolean;
}

/** Binds `server` and resolves with the bound port (useful with port 0). */
export function listenOn(server: Listener, host: string, port: number, options: ListenOptions = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, reusePort: options.reusePort === true }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Node server options for a public listener. Node's defaults are not safe for an edge (DESIGN.md):
 * every timeout is set from the manifest, the strict parser is never relaxed (`insecureHTTPParser`),
 * and duplicate headers are never joined.
 */
export function serverOptions(limits: GatewayLimits): ServerOptions {
  const shortest = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    // RFC 9112 §3.2 (Host required on HTTP/1.1) is enforced by the hygiene stage instead, so that the
    // refusal is counted and recorded like every other; Node's own check answers silently.
    requireHostHeader: false,
    joinDuplicateHeaders: false,
    insecureHTTPParser: false,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(
      GATEWAY_LIMITS.maxConnectionsCheckIntervalMs,
      Math.max(GATEWAY_LIMITS.minConnectionsCheckIntervalMs, Math.floor(shortest / 4)),
    ),
  };
}

/**
 * The limits Node lets a running server change: used at start and on reconfiguration. `maxHeaderSize`
 * and the TLS handshake timeout are fixed when the server is created (they need a restart).
 */
export function applyServerLimits(server: Listener, limits: GatewayLimits): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // Node 24 refuses the request (HPE_HEADER_OVERFLOW, 431) beyond this count instead of dropping lines.
  server.maxHeadersCount = limits.maxHeadersCount;
  server.maxConnections = limits.maxConnections;
  server.timeout = GATEWAY_LIMITS.socketIdleTimeoutMs;
}

export interface ListenerGuardSettings {
  limits: GatewayLimits;
  /** Addresses exempt from the per-client cap: trusted proxies carry many clients on one address. */
  exempt: (ip: string) => boolean;
  /** Where refusals are recorded as decision events; null for none. */
  decisions: DecisionSink | null;
  metrics: Pick<GatewayMetrics, 'denials'>;
  logger: Logger;
}

export interface ListenerGuardOptions extends ListenerGuardSettings {
  /** The `stage` label of denials counted here. */
  stage: string;
  /**
   * Called when the parser refuses the rest of a connection: when to answer. `now`: nothing is under
   * way; `cut`: a response already began that can never be completed, so the socket is destroyed; a
   * promise: the requests parsed before the refused bytes are served first, then the refusal follows.
   */
  settle?: (socket: Socket) => 'now' | 'cut' | Promise<void>;
}

export interface ListenerGuard {
  /** New settings for connections and refusals from now on (reconfiguration). */
  update(settings: ListenerGuardSettings): void;
  /** Open connections per client key (see {@link clientKey}); exempt addresses are not counted. */
  readonly clients: ReadonlyMap<string, number>;
}

/**
 * Connection-level defenses of a listener: the per-client connection cap (counted on the raw socket,
 * before any TLS or HTTP work), counting of connections the global cap drops, refusal of requests
 * Node's parser rejects (answered, closed, counted, and recorded as decision events), CONNECT, and TLS
 * handshake failures.
 */
export function guardListener(server: Listener, options: ListenerGuardOptions): ListenerGuard {
  let settings: ListenerGuardSettings = options;
  const { stage } = options;
  const clients = new Map<string, number>();

  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress;
    if (address === undefined) {
      // Already gone (reset before we saw it): nothing to serve, nothing to count.
      socket.destroy();
      return;
    }
    if (settings.exempt(normalizeIp(address))) return;
    const key = clientKey(address);
    const open = (clients.get(key) ?? 0) + 1;
    if (open > settings.limits.maxConnectionsPerClient) {
      settings.metrics.denials.inc({ stage, reason: 'client_connections' });
      socket.destroy();
      return;
    }
    clients.set(key, open);
    socket.once('close', () => {
      const left = (clients.get(key) ?? 1) - 1;
      if (left <= 0) clients.delete(key);
      else clients.set(key, left);
    });
  });

  // `maxConnections` makes Node close the socket at once; this is only the count.
  server.on('drop', () => settings.metrics.denials.inc({ stage, reason: 'max_connections' }));

  const refused = new WeakSet<Socket>();
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Node may report more than one error for a connection whose parser already failed: one answer.
    if (refused.has(socket)) return;
    refused.add(socket);
    const code = err.code ?? 'HPE_UNKNOWN';
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      socket.destroy(); // the peer is gone: nothing to answer
      return;
    }
    const status = parserStatus(code);
    const reason = parserReason(code);
    const errorId = newErrorId();
    settings.metrics.denials.inc({ stage, reason });
    settings.logger.info(
      { errorId, stage, code, status, clientIp: socket.remoteAddress },
      'request refused by the parser',
    );
    settings.decisions?.emit(
      listenerDecision({ stage, reason, code: 'GW_ERR_PARSER', status, errorId, peer: socket.remoteAddress }),
    );
    const pending = options.settle?.(socket) ?? 'now';
    if (pending === 'now') {
      refuseRaw(socket, status, errorId);
      return;
    }
    if (pending === 'cut') {
      socket.destroy();
      return;
    }
    // A response is under way: let it finish (bounded by the request timeout), then answer and close.
    const cap = setTimeout(() => socket.destroy(), settings.limits.requestTimeoutMs);
    cap.unref();
    void pending.then(() => {
      clearTimeout(cap);
      if (socket.writable) refuseRaw(socket, status, errorId);
      else socket.destroy();
    });
  });

  // A CONNECT request is not routable here; Node would otherwise drop the socket without a word.
  server.on('connect', (_req, socket: Socket) => {
    settings.metrics.denials.inc({ stage, reason: 'connect_method' });
    refuseRaw(socket, 405, newErrorId());
  });

  // An expectation other than 100-continue (RFC 9110 §10.1.1: 417). Node's own answer keeps the
  // connection open with the body unread; this one closes it.
  server.on('checkExpectation', (_req, res: ServerResponse) => {
    settings.metrics.denials.inc({ stage, reason: 'expectation' });
    res.writeHead(417, { connection: 'close', 'content-length': 0, 'cache-control': 'no-store' });
    res.end();
  });

  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    settings.metrics.denials.inc({ stage: 'tls', reason: tlsReason(err) });
    socket.destroy();
  });

  return {
    update(next) {
      settings = next;
    },
    clients,
  };
}

/** A decision event for a refusal made before any pipeline stage ran (no request id, path or route yet). */
export function listenerDecision(fields: {
  stage: string;
  reason: string;
  code: string;
  status: number;
  errorId: string;
  peer: string | undefined;
}): DecisionEvent {
  return {
    time: new Date().toISOString(),
    component: 'gateway',
    decision: 'deny',
    stage: fields.stage,
    reason: fields.reason,
    code: fields.code,
    status: fields.status,
    requestId: '',
    errorId: fields.errorId,
    method: 'other',
    path: '',
    route: null,
    clientIp: normalizeIp(fields.peer ?? ''),
    subject: null,
    clientId: null,
  };
}

/**
 * The key a client's connections are counted under: the IPv4 address, or the /64 of an IPv6 address
 * (one subscriber holds a whole /64; RFC 6177). IPv4-mapped IPv6 addresses count as their IPv4 address.
 */
export function clientKey(address: string): string {
  const ip = normalizeIp(address);
  if (!isIPv6(ip)) return ip;
  const hextets = expandIpv6(ip);
  return `${hextets.slice(0, GATEWAY_LIMITS.ipv6ClientPrefixHextets).join(':')}::/64`;
}

/** `::ffff:1.2.3.4` (an IPv4 client on a dual-stack socket) is 1.2.3.4. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/** The eight hextets of a valid IPv6 address, lower case without leading zeros (an embedded IPv4 tail becomes two). */
function expandIpv6(ip: string): string[] {
  const zone = ip.indexOf('%');
  let text = (zone === -1 ? ip : ip.slice(0, zone)).toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((h) => Number.parseInt(h, 16).toString(16));
}

/** The status for a parser refusal, as Node itself would answer it. */
function parserStatus(code: string): number {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 431;
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return 413;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 408;
    default:
      return 400;
  }
}

/** Metric label for a parser refusal: llhttp's and Node's codes are a closed set; anything else is `other`. */
function parserReason(code: string): string {
  return /^(?:HPE|ERR_HTTP)_[A-Z_]{1,40}$/.test(code) ? code.toLowerCase() : 'other';
}

/** Metric label for a failed TLS handshake, from a small fixed set. */
function tlsReason(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'handshake_timeout';
  if (code === 'ECONNRESET') return 'reset';
  if (/VERSION|PROTOCOL/.test(code)) return 'protocol_version';
  if (/CIPHER/.test(code)) return 'no_shared_cipher';
  return 'handshake_failed';
}

/**
 * Answers on a raw socket and closes it: used where no ServerResponse exists (parser refusals,
 * CONNECT). The socket is destroyed once the answer is flushed, or after a bounded wait if the client
 * does not read: a refused client never keeps a half-open socket and its connection slot.
 */
function refuseRaw(socket: Socket, status: number, errorId: string): void {
  const body = JSON.stringify({ error: PUBLIC_ERRORS[status] ?? 'error', error_id: errorId });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n${body}`,
  );
  socket.destroySoon();
  const timer = setTimeout(() => socket.destroy(), GATEWAY_LIMITS.refusalFlushMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
