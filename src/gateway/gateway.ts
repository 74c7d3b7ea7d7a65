import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { newErrorId, RampartError } from '../core/errors.ts';
import type { RequestContext } from './context.ts';
import { GATEWAY_LIMITS } from './defaults.ts';
import { denialDetail, PUBLIC_ERRORS } from './deny.ts';
import { METHOD_LABELS } from './metrics.ts';
import { assertPipeline, PIPELINE } from './pipeline.ts';
import type { GatewayDeps, Stage, StageDefinition } from './stage.ts';
import { createProxy } from './stages/proxy.ts';

export interface Gateway {
  readonly server: Server;
  /** The stage names in pipeline order, terminal last. */
  readonly stageNames: readonly string[];
  listen(host: string, port: number): Promise<number>;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), then closes everything. */
  close(graceMs?: number): Promise<void>;
}

/** Builds the gateway for one validated manifest: stages are created once here, never per request. */
export function createGateway(deps: GatewayDeps, definitions: readonly StageDefinition[] = PIPELINE): Gateway {
  const all: StageDefinition[] = [
    ...definitions,
    { name: 'proxy', purpose: 'stream to the service', create: (d) => createProxy(d, writeHead), terminal: true },
  ];
  assertPipeline(all);
  const stages: Stage[] = all.map((definition) => definition.create(deps));
  const hooks = stages.map((stage) => stage.respond ?? null);

  function writeHead(ctx: RequestContext, status: number, headers: OutgoingHttpHeaders): void {
    for (let i = ctx.entered - 1; i >= 0; i--) hooks[i]?.(ctx, headers);
    ctx.res.writeHead(status, headers);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket as (typeof req.socket & { encrypted?: boolean }) | null;
    const ctx: RequestContext = {
      req,
      res,
      startedAt: performance.now(),
      secure: socket?.encrypted === true,
      peer: socket?.remoteAddress ?? '',
      logger: deps.logger,
      requestId: '',
      traceparent: '',
      clientIp: socket?.remoteAddress ?? '',
      path: '',
      query: '',
      route: null,
      identity: null,
      entered: 0,
    };
    res.once('close', () => finish(ctx));
    try {
      for (let i = 0; i < stages.length; i++) {
        ctx.entered = i + 1;
        const pending = stages[i]!.request(ctx);
        if (pending) await pending;
      }
    } catch (err) {
      try {
        sendError(ctx, err);
      } catch (fatal) {
        // Never let one request take the process down: log and cut this exchange.
        deps.logger.error({ err: fatal, requestId: ctx.requestId }, 'error response failed');
        res.destroy();
      }
    }
  }

  function sendError(ctx: RequestContext, err: unknown): void {
    const { req, res } = ctx;
    const errorId = newErrorId();
    const stage = stages[ctx.entered - 1]?.name ?? 'unknown';
    const known = err instanceof RampartError;
    const status = known ? err.status : 500;
    const code = known ? err.code : 'GW_ERR_INTERNAL';
    const { reason, headers: extra } = known ? denialDetail(err) : { reason: 'internal', headers: {} };

    deps.metrics.denials.inc({ stage, reason });
    const log = { errorId, requestId: ctx.requestId, stage, code, reason, status, route: ctx.route?.route.id };
    if (status >= 500) deps.logger.error({ ...log, err: known ? err.cause : err }, 'request failed');
    else deps.logger.info(log, 'request denied');
    if (status < 500) {
      deps.decisions.emit({
        time: new Date().toISOString(),
        component: 'gateway',
        decision: 'deny',
        stage,
        reason,
        code,
        status,
        requestId: ctx.requestId,
        errorId,
        method: METHOD_LABELS.has(req.method ?? '') ? req.method! : 'other',
        path: ctx.path || (req.url ?? '').slice(0, 256),
        route: ctx.route?.route.id ?? null,
        clientIp: ctx.clientIp,
        subject: ctx.identity?.subject ?? null,
        clientId: ctx.identity?.clientId ?? null,
      });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = JSON.stringify({ error: PUBLIC_ERRORS[status] ?? 'error', error_id: errorId });
    const headers: OutgoingHttpHeaders = {
      ...extra,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    };
    // After a framing or parse problem the rest of the connection cannot be trusted (desync): close it.
    if (stage === 'hygiene') headers.connection = 'close';
    writeHead(ctx, status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  function finish(ctx: RequestContext): void {
    const route = ctx.route?.route.id ?? 'unmatched';
    const status = ctx.res.headersSent ? ctx.res.statusCode : 0;
    const seconds = (performance.now() - ctx.startedAt) / 1000;
    const method = METHOD_LABELS.has(ctx.req.method ?? '') ? ctx.req.method! : 'other';
    deps.metrics.requests.inc({
      route,
      method,
      status_class: status === 0 ? 'aborted' : `${Math.floor(status / 100)}xx`,
    });
    deps.metrics.duration.observe({ route }, seconds);
    deps.logger.info(
      {
        requestId: ctx.requestId,
        method,
        path: ctx.path,
        route,
        status,
        ms: Math.round(seconds * 1e4) / 10,
        clientIp: ctx.clientIp,
        subject: ctx.identity?.subject,
      },
      'access',
    );
  }

  const server = createServer(
    {
      maxHeaderSize: GATEWAY_LIMITS.maxHeaderBytes,
      requireHostHeader: true,
      joinDuplicateHeaders: false,
      insecureHTTPParser: false,
      headersTimeout: GATEWAY_LIMITS.headersTimeoutMs,
      requestTimeout: GATEWAY_LIMITS.requestTimeoutMs,
      keepAliveTimeout: GATEWAY_LIMITS.keepAliveTimeoutMs,
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => {
      void handle(req, res);
    },
  );
  server.maxHeadersCount = GATEWAY_LIMITS.maxHeadersCount;
  server.maxConnections = GATEWAY_LIMITS.maxConnections;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => onClientError(deps, err, socket));

  return {
    server,
    stageNames: stages.map((s) => s.name),
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      }),
    close: async (graceMs = 10_000) => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(timer);
      await Promise.all(stages.map((stage) => stage.close?.()));
      await deps.decisions.close();
    },
  };
}

/**
 * Requests Node's parser refuses never reach the pipeline: answer them with a bare status, close the
 * connection (the byte stream can no longer be trusted), and count them as hygiene denials.
 */
function onClientError(deps: GatewayDeps, err: NodeJS.ErrnoException, socket: Socket): void {
  const code = err.code ?? 'HPE_UNKNOWN';
  const status =
    code === 'HPE_HEADER_OVERFLOW'
      ? 431
      : code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? 408
        : code === 'HPE_URI_TOO_LONG'
          ? 414
          : 400;
  deps.metrics.denials.inc({ stage: 'parser', reason: code.toLowerCase() });
  if (code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const phrase = {
    400: 'Bad Request',
    408: 'Request Timeout',
    414: 'URI Too Long',
    431: 'Request Header Fields Too Large',
  }[status];
  socket.end(`HTTP/1.1 ${status} ${phrase}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
