import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Client, Pool } from 'undici';
import type { RequestContext } from '../context.ts';
import { GATEWAY_LIMITS } from '../defaults.ts';
import { deny } from '../deny.ts';
import type { GatewayDeps, Stage } from '../stage.ts';

/** RFC 9110 §7.6.1 hop-by-hop fields, plus the non-standard ones proxies have used. Never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

/**
 * Request headers the gateway owns: any inbound copy is dropped and the gateway's own value is sent, so
 * a client can never speak for the gateway (`x-rampart-*`) or forge its forwarding chain.
 */
const GATEWAY_OWNED = new Set([
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'forwarded',
  'x-real-ip',
  'x-request-id',
  'traceparent',
  'tracestate',
]);

/** Idempotent methods that carry no body in practice: retried once after a dead pooled connection. */
const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export type ResponseWriter = (ctx: RequestContext, status: number, headers: OutgoingHttpHeaders) => void;

/**
 * The terminal stage: streams the request to the route's service over a keep-alive undici pool and
 * streams the response back. The pool (a Dispatcher) is where transport concerns plug in: mTLS to the
 * service's SPIFFE identity arrives here as the pool's connector.
 */
export function createProxy(deps: GatewayDeps, writeHead: ResponseWriter): Stage {
  const pools = new Map<string, { origin: string; pool: Pool }>();
  const poolOptions = {
    connectTimeout: GATEWAY_LIMITS.upstreamConnectTimeoutMs,
    headersTimeout: GATEWAY_LIMITS.upstreamHeadersTimeoutMs,
    bodyTimeout: GATEWAY_LIMITS.upstreamBodyTimeoutMs,
    keepAliveTimeout: 4_000,
  };
  for (const [service, origin] of Object.entries(deps.upstreams)) {
    pools.set(service, {
      origin,
      pool: new Pool(origin, { ...poolOptions, connections: GATEWAY_LIMITS.upstreamConnections }),
    });
  }

  /**
   * One request on a connection of its own, closed when the exchange ends. For the retry after a dead
   * pooled connection: the pool may hold several sockets the service closed at once (it restarted), and
   * only a fresh connection tells "the service is back" from "the service is gone" (then 503).
   */
  async function requestOnFreshConnection(origin: string, options: Parameters<Pool['request']>[0]) {
    const client = new Client(origin, poolOptions);
    try {
      const response = await client.request(options);
      response.body.once('close', () => void client.close());
      return response;
    } catch (err) {
      void client.destroy();
      throw err;
    }
  }

  return {
    name: 'proxy',
    request: async (ctx) => {
      const service = ctx.route!.route.service;
      const upstreamPool = pools.get(service);
      if (!upstreamPool) throw deny(503, 'GW_ERR_UPSTREAM_UNAVAILABLE', { reason: 'no_upstream' });
      const { origin, pool } = upstreamPool;
      const { req, res } = ctx;
      const abort = new AbortController();
      const onClose = () => {
        if (!res.writableFinished) abort.abort();
      };
      res.once('close', onClose);

      const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
      const options = {
        method: req.method as 'GET',
        path: ctx.query ? `${ctx.path}?${ctx.query}` : ctx.path,
        headers: upstreamHeaders(ctx),
        body: hasBody ? req : null,
        signal: abort.signal,
      };
      let upstream: Awaited<ReturnType<Pool['request']>>;
      try {
        try {
          upstream = await pool.request(options);
        } catch (err) {
          // A pooled keep-alive connection the service closed (it restarted, or idled it out) fails before
          // the request reached anyone. Safe to send once more on a fresh connection, but only when
          // the method is idempotent and there is no body stream that was partly consumed (RFC 9110 §9.2.2).
          if (
            hasBody ||
            !RETRYABLE_METHODS.has(options.method) ||
            failureKind(err) !== 'reset' ||
            abort.signal.aborted
          ) {
            throw err;
          }
          upstream = await requestOnFreshConnection(origin, options);
        }
      } catch (err) {
        res.off('close', onClose);
        const kind = failureKind(err);
        deps.metrics.upstreamErrors.inc({ service, kind });
        if (kind === 'unavailable')
          throw deny(503, 'GW_ERR_UPSTREAM_UNAVAILABLE', { reason: 'upstream_unavailable' }, err);
        if (kind === 'timeout') throw deny(504, 'GW_ERR_UPSTREAM_TIMEOUT', { reason: 'upstream_timeout' }, err);
        throw deny(502, 'GW_ERR_UPSTREAM', { reason: `upstream_${kind}` }, err);
      }

      writeHead(ctx, upstream.statusCode, responseHeaders(upstream.headers));
      try {
        await pipeline(upstream.body, res);
      } catch (err) {
        // Headers are gone; all that is left is to stop. The client sees a truncated response.
        deps.metrics.upstreamErrors.inc({ service, kind: 'reset' });
        ctx.logger.warn({ err, service }, 'response stream aborted');
        res.destroy();
      } finally {
        res.off('close', onClose);
      }
    },
    close: async () => {
      await Promise.all([...pools.values()].map(({ pool }) => pool.close()));
    },
  };
}

function upstreamHeaders(ctx: RequestContext): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const inbound = ctx.req.headers;
  const listed = connectionListed(inbound);
  for (const name in inbound) {
    if (HOP_BY_HOP.has(name) || GATEWAY_OWNED.has(name) || name.startsWith('x-rampart-') || listed?.has(name)) continue;
    const value = inbound[name];
    if (value !== undefined) out[name] = value;
  }
  out['x-forwarded-for'] = ctx.clientIp;
  out['x-forwarded-proto'] = ctx.secure ? 'https' : 'http';
  if (inbound.host) out['x-forwarded-host'] = inbound.host;
  out['x-request-id'] = ctx.requestId;
  out.traceparent = ctx.traceparent;
  return out;
}

function responseHeaders(inbound: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const listed = connectionListed(inbound);
  for (const name in inbound) {
    if (HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    out[name] = inbound[name];
  }
  return out;
}

/** RFC 9110 §7.6.1: fields named in Connection are hop-by-hop too. */
function connectionListed(headers: IncomingHttpHeaders): Set<string> | null {
  const connection = headers.connection;
  if (!connection) return null;
  return new Set(
    String(connection)
      .toLowerCase()
      .split(',')
      .map((s) => s.trim()),
  );
}

function failureKind(err: unknown): 'unavailable' | 'timeout' | 'reset' | 'protocol' {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED') {
    return 'unavailable';
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return 'timeout';
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return 'reset';
  return 'protocol';
}
