import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { isRampartError } from '../../core/errors.ts';
import type { RequestContext } from '../context.ts';
import { deny } from '../deny.ts';
import type { GatewayDeps, Stage } from '../stage.ts';
import { createUpstreamTransports, type UpstreamTransports } from '../upstream.ts';
import { limitBody } from './hygiene.ts';

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

export type ResponseWriter = (ctx: RequestContext, status: number, headers: OutgoingHttpHeaders) => void;

/**
 * What the proxy may be given besides {@link GatewayDeps}: the worker's upstream transport, made once
 * and kept across configuration reloads (warm pools, breakers that remember). Without it the proxy
 * makes its own and closes it with the stage.
 */
export interface ProxyDeps {
  readonly upstream?: UpstreamTransports;
}

/**
 * The terminal stage: streams the request to the route's service through that service's dispatcher
 * (upstream.ts: circuit breaker → one retry on a fresh connection → keep-alive pool) and streams the
 * response back, without buffering either body. A refused connection or an open circuit answers 503 at
 * once, timeouts 504, other upstream failures 502; the gateway's error path adds the `error_id`.
 */
export function createProxy(deps: GatewayDeps & ProxyDeps, writeHead: ResponseWriter): Stage {
  const owned = deps.upstream === undefined;
  const transports =
    deps.upstream ?? createUpstreamTransports(deps.upstreams, { logger: deps.logger, registry: deps.registry });

  return {
    name: 'proxy',
    request: async (ctx) => {
      const service = ctx.route!.route.service;
      const upstream = transports.get(service);
      if (!upstream) throw deny(503, 'GW_ERR_UPSTREAM_UNAVAILABLE', { reason: 'no_upstream' });
      const { req, res } = ctx;
      const abort = new AbortController();
      const onClose = () => {
        if (!res.writableFinished) abort.abort();
      };
      res.once('close', onClose);

      const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
      let response: Dispatcher.ResponseData;
      try {
        response = await upstream.dispatcher.request({
          method: req.method as Dispatcher.HttpMethod,
          path: ctx.query ? `${ctx.path}?${ctx.query}` : ctx.path,
          headers: upstreamHeaders(ctx),
          // A stream, never `req` itself: counted against the body limit as it flows (chunked bodies
          // declare no size), and when undici gives up on it (refused, open circuit) it is this stream
          // that is destroyed, not the client's socket, so the client still gets its status.
          body: hasBody ? limitBody(req, deps.manifest.gateway.limits.maxBodyBytes) : null,
          signal: abort.signal,
        });
      } catch (err) {
        res.off('close', onClose);
        throw upstreamDenial(deps, service, err);
      }

      writeHead(ctx, response.statusCode, responseHeaders(response.headers));
      try {
        await relay(response.body, res);
      } catch (err) {
        // Headers are gone; all that is left is to stop. The client sees a truncated response.
        if (!abort.signal.aborted) {
          deps.metrics.upstreamErrors.inc({ service, kind: 'reset' });
          ctx.logger.warn({ err, service }, 'response stream aborted');
        }
        res.destroy();
      } finally {
        res.off('close', onClose);
      }
    },
    close: async () => {
      if (owned) await transports.close();
    },
  };
}

function upstreamDenial(deps: GatewayDeps, service: string, err: unknown) {
  if (isRampartError(err, 'GW_ERR_CIRCUIT_OPEN')) {
    deps.metrics.upstreamErrors.inc({ service, kind: 'circuit_open' });
    return deny(503, 'GW_ERR_CIRCUIT_OPEN', { reason: 'circuit_open' });
  }
  // A denial raised while reading the client's body (its size limit): the client's fault, passed on as is.
  if (isRampartError(err) && err.status < 500) return err;
  const kind = failureKind(err);
  deps.metrics.upstreamErrors.inc({ service, kind });
  if (kind === 'unavailable') return deny(503, 'GW_ERR_UPSTREAM_UNAVAILABLE', { reason: 'upstream_unavailable' }, err);
  if (kind === 'timeout') return deny(504, 'GW_ERR_UPSTREAM_TIMEOUT', { reason: 'upstream_timeout' }, err);
  return deny(502, 'GW_ERR_UPSTREAM', { reason: `upstream_${kind}` }, err);
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

/** Upstream failures by kind, for the status and the `kind` label of the upstream-error metric. */
export function failureKind(err: unknown): 'unavailable' | 'timeout' | 'reset' | 'protocol' {
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

/**
 * Streams the upstream body to the client and settles when the response is finished (or fails). Plain
 * `pipe` plus three listeners rather than `stream.pipeline`: on this path (every proxied request)
 * pipeline's completion machinery (an AbortSignal and a DOMException with a stack per call) cost about
 * 40 % of the gateway's CPU per request in the benchmark's profile. Back-pressure is `pipe`'s; a client
 * that leaves aborts the upstream request through the stage's signal, which destroys `body`.
 */
function relay(body: Readable, res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      body.off('error', done);
      res.off('finish', finish);
      res.off('close', close);
      if (err) reject(err);
      else resolve();
    };
    const finish = () => done();
    const close = () => done(res.writableFinished ? undefined : new Error('client closed before the response ended'));
    body.once('error', done);
    res.once('finish', finish);
    res.once('close', close);
    body.pipe(res);
  });
}
