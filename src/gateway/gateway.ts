import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Manifest } from '../config/model.ts';
import { newErrorId, RampartError } from '../core/errors.ts';
import { StageAnswer } from './answer.ts';
import type { RequestContext, ResponseHook } from './context.ts';
import type { DecisionSink } from './decision-sink.ts';
import { GATEWAY_LIMITS } from './defaults.ts';
import { denialDetail, PUBLIC_ERRORS } from './deny.ts';
import {
  applyServerLimits,
  guardListener,
  type Listener,
  type ListenerGuardSettings,
  type ListenOptions,
  listenOn,
  serverOptions,
} from './listener.ts';
import { METHOD_LABELS } from './metrics.ts';
import { assertPipeline, PIPELINE } from './pipeline.ts';
import { createRedirectListener, type RedirectListener } from './redirect.ts';
import type { GatewayDeps, Stage, StageDefinition } from './stage.ts';
import { createTrustedProxies } from './stages/client.ts';
import { createProxy } from './stages/proxy.ts';
import {
  type CertificateInstaller,
  type CertificateReload,
  type CertificateReloader,
  certificateCovers,
  checkCertificatePair,
  createCertificateInstaller,
  createCertificateReloader,
  loadCertificatePair,
  onSecureConnection,
  tlsServerOptions,
} from './tls.ts';

export type { ListenOptions } from './listener.ts';
export type { CertificateReload } from './tls.ts';

export interface ReconfigureResult {
  /**
   * Dotted manifest paths whose new values only take effect when the gateway is restarted (the listen
   * address, TLS mode and files, the redirect listener, workers, the header-size and TLS-handshake
   * limits that Node fixes when a server is created). Everything else is in force for new requests.
   */
  readonly restartRequired: readonly string[];
  /** Settles once the requests that started on the previous stages have finished and those stages are closed. */
  readonly retired: Promise<void>;
}

export interface Gateway {
  /** The public listener: `https.Server` when `gateway.tls` is files or auto, `http.Server` when it is off. */
  readonly server: Listener;
  /** The stage names of the configuration in force, in pipeline order, terminal last. */
  readonly stageNames: readonly string[];
  /** The plain-HTTP redirect listener (`gateway.redirectHttp`), or null. Bound by `listen`. */
  readonly redirect: RedirectListener | null;
  /**
   * Binds the listener (and the redirect listener, on its configured port and the same host) and
   * resolves with the bound port. `reusePort` lets one gateway per worker thread share the port.
   */
  listen(host: string, port: number, options?: ListenOptions): Promise<number>;
  /**
   * Builds the stages for a new configuration and swaps them in atomically. Requests in flight finish on
   * the stages they started with; those stages are closed once their last request is done. If the new
   * stages cannot be built, this throws `GW_ERR_RECONFIGURE` and the running configuration stays.
   */
  reconfigure(deps: GatewayDeps): ReconfigureResult;
  /**
   * Reads the certificate and key files again (also done automatically when they change) and serves
   * the new pair to new connections if it is valid; a bad pair is logged and the old one stays.
   * Established connections keep working. With TLS off this resolves `{ outcome: 'unchanged' }`.
   */
  reloadCertificate(): Promise<CertificateReload>;
  /**
   * `tls: auto`: serves a new certificate and key (PEM, from the local CA via the main thread) to new
   * connections if the pair is valid; a bad pair is logged and the old one stays. Established
   * connections keep working. In the other modes this answers `{ outcome: 'unchanged' }`.
   */
  installCertificate(certPem: string, keyPem: string): CertificateReload;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), then closes everything. */
  close(graceMs?: number): Promise<void>;
}

/** One configuration's stages and the requests still running on them. */
interface Generation {
  readonly deps: GatewayDeps;
  readonly stages: readonly Stage[];
  readonly hooks: readonly (ResponseHook | null)[];
  inflight: number;
  retiring: boolean;
  closing: Promise<void> | null;
  readonly retired: PromiseWithResolvers<void>;
}

/** What a gateway needs besides its dependencies. */
export interface GatewayOptions {
  /** `tls: auto`: the first certificate and key (PEM) from the local CA; later ones via `installCertificate`. */
  edgeCertificate?: { certPem: string; keyPem: string };
}

/** Builds the gateway for one validated manifest: stages are created once here, never per request. */
export function createGateway(
  deps: GatewayDeps,
  definitions: readonly StageDefinition[] = PIPELINE,
  options: GatewayOptions = {},
): Gateway {
  const manifest = deps.manifest;
  const { limits, tls } = manifest.gateway;
  if (tls.mode === 'auto' && !options.edgeCertificate) {
    throw new RampartError('GW_ERR_TLS_AUTO', '`tls: auto` needs a certificate from the control plane');
  }
  if (manifest.gateway.redirectHttp !== null && tls.mode === 'off') {
    throw new RampartError('GW_ERR_REDIRECT_WITHOUT_TLS', 'an HTTP redirect listener needs TLS on the gateway');
  }
  // Read before anything is built: a missing or bad certificate stops the start here.
  const pair =
    tls.mode === 'files'
      ? loadCertificatePair(tls.cert, tls.key)
      : tls.mode === 'auto' && options.edgeCertificate
        ? checkCertificatePair(options.edgeCertificate.certPem, options.edgeCertificate.keyPem)
        : null;

  const generations = new Set<Generation>();
  let current = build(deps);
  let boundPort = 0;
  let closed = false;
  /** Requests whose client sent `Expect: 100-continue`: told to go on only once the pipeline admits them. */
  const awaitingContinue = new WeakSet<IncomingMessage>();
  const connections = new WeakMap<Socket, ConnectionState>();

  let server: Listener;
  let certificates: CertificateReloader | null = null;
  let installer: CertificateInstaller | null = null;
  if (pair) {
    const https = createHttpsServer({ ...serverOptions(limits), ...tlsServerOptions(pair, limits) }, onRequest);
    https.on('secureConnection', onSecureConnection);
    if (tls.mode === 'files') {
      certificates = createCertificateReloader({
        server: https,
        certFile: tls.cert,
        keyFile: tls.key,
        initial: pair,
        limits,
        logger: deps.logger,
        registry: deps.registry,
      });
    } else {
      installer = createCertificateInstaller({
        server: https,
        initial: pair,
        limits,
        logger: deps.logger,
        registry: deps.registry,
      });
      certificates = installer;
    }
    server = https;
  } else {
    server = createServer(serverOptions(limits), onRequest);
  }
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.add(req);
    onRequest(req, res);
  });
  applyServerLimits(server, limits);
  const guard = guardListener(server, {
    ...guardSettings(deps),
    stage: 'listener',
    settle: (socket) => {
      const state = connections.get(socket);
      if (!state) return 'now';
      const broken = state.last;
      if (broken && !broken.req.complete) {
        // The refused bytes are this request's own body (a bad chunk, a body timeout): it can never
        // be served. If it has not started it never will; if it has, its answer is the refusal, or a
        // cut if its response already began. Requests before it were complete and are served first.
        state.skip.add(broken.res);
        if (state.active === broken.res) return broken.res.headersSent ? 'cut' : 'now';
      }
      // The refused bytes come after every request parsed so far: those are valid and are served, in
      // order, and the refusal follows the last of them.
      return state.tail;
    },
  });

  let redirect: RedirectListener | null = null;
  if (manifest.gateway.redirectHttp !== null && certificates !== null) {
    const reloader = certificates;
    const listenHost = manifest.gateway.listen.host.toLowerCase();
    const wildcard = listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '';
    redirect = createRedirectListener({
      ...guardSettings(deps),
      allowHost: (name) => (!wildcard && name === listenHost) || certificateCovers(reloader.current().leaf, name),
      httpsPort: () => boundPort,
    });
  }

  function guardSettings(d: GatewayDeps): ListenerGuardSettings {
    return {
      limits: d.manifest.gateway.limits,
      exempt: createTrustedProxies(d.manifest.gateway.trustedProxies),
      decisions: d.decisions,
      metrics: d.metrics,
      logger: d.logger,
    };
  }

  function build(d: GatewayDeps): Generation {
    const hooks: (ResponseHook | null)[] = [];
    const writeHead = (ctx: RequestContext, status: number, headers: OutgoingHttpHeaders): void => {
      for (let i = ctx.entered - 1; i >= 0; i--) hooks[i]?.(ctx, headers);
      ctx.res.writeHead(status, headers);
    };
    const all: StageDefinition[] = [
      ...definitions,
      { name: 'proxy', purpose: 'stream to the service', create: (x) => createProxy(x, writeHead), terminal: true },
    ];
    assertPipeline(all);
    const stages: Stage[] = [];
    try {
      for (const definition of all) stages.push(definition.create(d));
    } catch (err) {
      // Release what the stages built so far hold (pools, timers) before reporting.
      for (const stage of stages) stage.close?.().catch(() => {});
      throw err;
    }
    hooks.push(...stages.map((stage) => stage.respond ?? null));
    const generation: Generation = {
      deps: d,
      stages,
      hooks,
      inflight: 0,
      retiring: false,
      closing: null,
      retired: Promise.withResolvers<void>(),
    };
    generations.add(generation);
    return generation;
  }

  /** Marks a configuration as replaced; its stages close when its last request is done. */
  function retire(generation: Generation): void {
    generation.retiring = true;
    if (generation.inflight === 0) void closeGeneration(generation);
  }

  function closeGeneration(generation: Generation): Promise<void> {
    generation.closing ??= (async () => {
      const results = await Promise.allSettled(generation.stages.map((stage) => stage.close?.()));
      for (const result of results) {
        if (result.status === 'rejected') generation.deps.logger.warn({ err: result.reason }, 'stage close failed');
      }
      generations.delete(generation);
      // A decision sink is closed once no configuration still in use writes to it.
      const sink: DecisionSink = generation.deps.decisions;
      if (![...generations].some((g) => g.deps.decisions === sink)) await sink.close();
      generation.retired.resolve();
    })();
    return generation.closing;
  }

  /**
   * Requests of one connection are handled one at a time, in order. Node parses pipelined requests
   * ahead and would start them all at once: the upstream would see them in any order, and a request
   * behind one the gateway refuses (and closes the connection after) would still be forwarded although
   * its answer can never be delivered. So each waits for the previous response to finish, and nothing
   * queued behind a closing decision runs at all.
   */
  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    let state = connections.get(socket);
    if (!state) {
      state = {
        tail: Promise.resolve(),
        closing: false,
        active: null,
        last: null,
        skip: new WeakSet(),
        queued: 0,
        paused: false,
      };
      connections.set(socket, state);
    }
    const connection = state;
    connection.last = { req, res };
    // Backpressure: past the bound, stop reading from this client until its queue has drained.
    if (++connection.queued > GATEWAY_LIMITS.maxPipelinedRequests && !connection.paused) {
      connection.paused = true;
      socket.pause();
    }
    connection.tail = connection.tail
      .then(() => run(connection, req, res))
      .finally(() => {
        if (--connection.queued === 0 && connection.paused) {
          connection.paused = false;
          socket.resume();
        }
      });
  }

  async function run(connection: ConnectionState, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (connection.closing || connection.skip.has(res) || res.destroyed) return;
    // The configuration is captured once: this request runs on these stages to its end, whatever
    // reconfigure() does meanwhile.
    const generation = current;
    generation.inflight++;
    connection.active = res;
    try {
      await handle(generation, req, res);
      if (!res.writableFinished && !res.destroyed) await finished(res);
    } finally {
      connection.active = null;
      generation.inflight--;
      if (generation.retiring && generation.inflight === 0) void closeGeneration(generation);
    }
    // The client asked for this to be the last exchange, or HTTP/1.0 without keep-alive: Node closes
    // the connection after this response, so nothing behind it may start.
    if (!keepsAlive(req)) connection.closing = true;
  }

  async function handle(generation: Generation, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { stages } = generation;
    const socket = req.socket as (typeof req.socket & { encrypted?: boolean }) | null;
    const ctx: RequestContext = {
      req,
      res,
      startedAt: performance.now(),
      secure: socket?.encrypted === true,
      peer: socket?.remoteAddress ?? '',
      logger: generation.deps.logger,
      requestId: '',
      traceparent: '',
      clientIp: socket?.remoteAddress ?? '',
      path: '',
      query: '',
      route: null,
      identity: null,
      entered: 0,
    };
    res.once('close', () => finish(generation, ctx));
    try {
      const last = stages.length - 1;
      for (let i = 0; i <= last; i++) {
        // The client is gone (it hung up, or the parser refused the rest of its bytes while a stage
        // awaited): nothing further is done for it, above all no upstream request is started.
        if (res.destroyed) return;
        ctx.entered = i + 1;
        // RFC 9110 §10.1.1: `100 Continue` once the request is admitted, so a refused client never
        // sends its body. Node does not send it on its own when 'checkContinue' has a listener.
        if (i === last && awaitingContinue.has(req) && !res.headersSent) res.writeContinue();
        const pending = stages[i]!.request(ctx);
        if (pending) await pending;
      }
    } catch (err) {
      try {
        if (err instanceof StageAnswer) sendAnswer(generation, ctx, err);
        else sendError(generation, ctx, err);
      } catch (fatal) {
        // Never let one request take the process down: log and cut this exchange.
        generation.deps.logger.error({ err: fatal, requestId: ctx.requestId }, 'error response failed');
        res.destroy();
      }
    }
  }

  function writeHead(generation: Generation, ctx: RequestContext, status: number, headers: OutgoingHttpHeaders) {
    for (let i = ctx.entered - 1; i >= 0; i--) generation.hooks[i]?.(ctx, headers);
    ctx.res.writeHead(status, headers);
  }

  /** Ends the connection after this response, and runs nothing queued behind it. */
  function closeAfter(ctx: RequestContext, headers: OutgoingHttpHeaders): void {
    headers.connection = 'close';
    const socket = ctx.req.socket;
    const state = socket ? connections.get(socket) : undefined;
    if (state) state.closing = true;
  }

  /** A stage answered the request itself (a CORS preflight): through the response hooks, no denial. */
  function sendAnswer(generation: Generation, ctx: RequestContext, answer: StageAnswer): void {
    const headers: OutgoingHttpHeaders = { ...answer.headers };
    if (unreadBody(ctx.req)) closeAfter(ctx, headers);
    writeHead(generation, ctx, answer.status, headers);
    ctx.res.end();
  }

  function sendError(generation: Generation, ctx: RequestContext, err: unknown): void {
    const { deps: d, stages } = generation;
    const { req, res } = ctx;
    const errorId = newErrorId();
    const stage = stages[ctx.entered - 1]?.name ?? 'unknown';
    const known = err instanceof RampartError;
    const status = known ? err.status : 500;
    const code = known ? err.code : 'GW_ERR_INTERNAL';
    const { reason, headers: extra } = known ? denialDetail(err) : { reason: 'internal', headers: {} };

    d.metrics.denials.inc({ stage, reason });
    const log = { errorId, requestId: ctx.requestId, stage, code, reason, status, route: ctx.route?.route.id };
    if (status >= 500) d.logger.error({ ...log, err: known ? err.cause : err }, 'request failed');
    else d.logger.info(log, 'request denied');
    if (status < 500) {
      d.decisions.emit({
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
    // After a framing or parse problem the rest of the connection cannot be trusted (desync), and an
    // unread body would have to be read and thrown away first: close the connection in both cases.
    if (stage === 'hygiene' || unreadBody(req)) closeAfter(ctx, headers);
    writeHead(generation, ctx, status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  function finish(generation: Generation, ctx: RequestContext): void {
    const { metrics } = generation.deps;
    const logger = generation.deps.accessLog ?? generation.deps.logger;
    const route = ctx.route?.route.id ?? 'unmatched';
    const status = ctx.res.headersSent ? ctx.res.statusCode : 0;
    const seconds = (performance.now() - ctx.startedAt) / 1000;
    const method = METHOD_LABELS.has(ctx.req.method ?? '') ? ctx.req.method! : 'other';
    metrics.requests.inc({
      route,
      method,
      status_class: status === 0 ? 'aborted' : `${Math.floor(status / 100)}xx`,
    });
    metrics.duration.observe({ route }, seconds);
    logger.info(
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

  return {
    server,
    get stageNames() {
      return current.stages.map((s) => s.name);
    },
    redirect,
    async listen(host, port, options = {}) {
      boundPort = await listenOn(server, host, port, options);
      const redirectHttp = manifest.gateway.redirectHttp;
      if (redirect && redirectHttp) await redirect.listen(host, redirectHttp.port, options);
      return boundPort;
    },
    reconfigure(next) {
      if (closed) throw new RampartError('GW_ERR_CLOSED', 'gateway is closed');
      let generation: Generation;
      try {
        generation = build(next);
      } catch (err) {
        current.deps.logger.error({ err }, 'new gateway configuration refused; the running one stays');
        throw new RampartError('GW_ERR_RECONFIGURE', 'gateway configuration refused', { cause: err });
      }
      const previous = current;
      current = generation;
      const restartRequired = restartOnly(manifest, next.manifest);
      const settings = guardSettings(next);
      const live = { ...settings.limits };
      // What Node fixes at creation stays as it was until a restart.
      live.maxHeaderBytes = limits.maxHeaderBytes;
      live.tlsHandshakeTimeoutMs = limits.tlsHandshakeTimeoutMs;
      applyServerLimits(server, live);
      guard.update({ ...settings, limits: live });
      redirect?.update({ ...settings, limits: live });
      retire(previous);
      next.logger.info({ stages: generation.stages.map((s) => s.name), restartRequired }, 'gateway reconfigured');
      return { restartRequired, retired: previous.retired.promise };
    },
    reloadCertificate: async () => {
      if (!certificates) return { outcome: 'unchanged', fingerprint: '', notAfter: new Date(Number.NaN) };
      return certificates.reload();
    },
    installCertificate(certPem, keyPem) {
      if (!installer) return { outcome: 'unchanged', fingerprint: '', notAfter: new Date(Number.NaN) };
      return installer.install(certPem, keyPem);
    },
    async close(graceMs = 10_000) {
      closed = true;
      certificates?.close();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await Promise.all([stopped, redirect?.close()]);
      clearTimeout(timer);
      retire(current);
      await Promise.all([...generations].map((g) => g.retired.promise));
    },
  };
}

/** Per client connection: the chain of its requests, and whether the gateway decided to close it. */
interface ConnectionState {
  tail: Promise<void>;
  /** No further request on this connection is handled (a refusal closed it, or the client did). */
  closing: boolean;
  /** The response being produced now, if any. */
  active: ServerResponse | null;
  /** The request the parser delivered most recently. */
  last: { req: IncomingMessage; res: ServerResponse } | null;
  /** Requests that must not run (their own bytes were refused by the parser). */
  skip: WeakSet<ServerResponse>;
  /** Requests delivered and not yet finished (running or waiting). */
  queued: number;
  /** Reading was paused here because too many requests were queued (never resumes Node's own pauses). */
  paused: boolean;
}

/** Settles when the response is done or its connection is gone. */
function finished(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('finish', done);
      res.off('close', done);
      resolve();
    };
    res.once('finish', done);
    res.once('close', done);
  });
}

/** RFC 9112 §9.3: whether the client expects the connection to persist after this exchange. */
function keepsAlive(req: IncomingMessage): boolean {
  const connection = String(req.headers.connection ?? '').toLowerCase();
  if (/(?:^|,)\s*close\s*(?:,|$)/.test(connection)) return false;
  return req.httpVersion === '1.1' || /(?:^|,)\s*keep-alive\s*(?:,|$)/.test(connection);
}

/** True when the request declared a body the gateway has not read to its end. */
function unreadBody(req: IncomingMessage): boolean {
  const declared = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  return declared && !req.readableEnded;
}

/** The manifest settings that differ between two configurations and need a restart to apply. */
function restartOnly(before: Manifest, after: Manifest): string[] {
  const a = before.gateway;
  const b = after.gateway;
  const changed: string[] = [];
  const differ = (x: unknown, y: unknown) => JSON.stringify(x) !== JSON.stringify(y);
  if (differ(a.listen, b.listen)) changed.push('gateway.listen');
  if (differ(a.tls, b.tls)) changed.push('gateway.tls');
  if (differ(a.redirectHttp, b.redirectHttp)) changed.push('gateway.redirectHttp');
  if (a.workers !== b.workers) changed.push('gateway.workers');
  if (a.limits.maxHeaderBytes !== b.limits.maxHeaderBytes) changed.push('gateway.limits.maxHeaderBytes');
  if (a.limits.tlsHandshakeTimeoutMs !== b.limits.tlsHandshakeTimeoutMs) {
    changed.push('gateway.limits.tlsHandshakeTimeoutMs');
  }
  return changed;
}
