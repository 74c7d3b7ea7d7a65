import type { RequestListener } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest, LogController } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { Agent, request as undiciRequest } from 'undici';
import {
  type CurrentSvid,
  createSvidSource,
  type SvidSource,
  type SvidSourceOptions,
  spiffeServerCheck,
} from '../control/api/index.ts';
import { type AuditClient, createAuditClient } from '../control/audit/client.ts';
import { AUDIT_CLIENT_DEFAULTS, type AuditClientLimits } from '../control/audit/client-defaults.ts';
import { type AccessTokenVerifier, createAccessTokenVerifier, type TokenIdentity } from '../core/access-token.ts';
import { startAdminServer } from '../core/admin-server.ts';
import { canonicalizeTarget } from '../core/canonical-path.ts';
import { newErrorId, RampartError } from '../core/errors.ts';
import { onShutdown } from '../core/lifecycle.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { createMetrics } from '../core/metrics.ts';
import { readRuntime, type ServiceRuntime } from '../core/runtime.ts';
import { serviceSpiffeId, svidIdentity } from '../core/spiffe.ts';
import { createPolicySource } from './policy-source.ts';
import { createServiceSecrets, type ServiceSecrets, type ServiceSecretsOptions } from './secrets.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The end user's verified access token, or null when the request carried none. */
    user: TokenIdentity | null;
    /**
     * The calling workload's SPIFFE ID (`spiffe://<td>/svc/<name>`), from its verified client
     * certificate; null when the service runs without mTLS (no control plane).
     */
    caller: string | null;
  }
}

/** TLS settings of the service's server and client, in one place. */
export const SDK_TLS_DEFAULTS = {
  /** TLS 1.2 is the floor (RFC 9325 §3.1.1); 1.3 is negotiated whenever both ends have it. */
  minVersion: 'TLSv1.2',
  /** A handshake longer than this on loopback is a stuck or hostile peer (Node's default is 120 s). */
  handshakeTimeoutMs: 10_000,
  /** Pooled connections per peer. */
  peerConnections: 16,
} as const;

export interface ServiceOptions {
  /** Overrides the runtime read from the environment (tests). */
  runtime?: ServiceRuntime;
  /** Overrides token verification (tests with their own keys use the real verifier with their JWKS instead). */
  verifier?: AccessTokenVerifier;
  /** The logger to use instead of one writing JSON lines to stdout. */
  logger?: Logger;
  /** Overrides of the SVID renewal schedule (control/api/defaults.ts SVID_RENEWAL_DEFAULTS); tests with short TTLs. */
  svidSchedule?: SvidSourceOptions['schedule'];
  /** Overrides of the audit client's settings (control/audit/client-defaults.ts); tests. */
  audit?: AuditClientLimits;
  /** How often the inbound policy is refreshed from the control plane (default POLICY_DEFAULTS.refreshMs); tests shorten it. */
  policyRefreshMs?: number;
  /** Cache lifetime and timeouts of `secrets.get` (tests of rotation use a short lifetime). */
  secrets?: ServiceSecretsOptions;
}

export interface CallInit {
  method?: string;
  /** Serialized as JSON. */
  json?: unknown;
  /** The inbound request this call is made for: its user token, request id and trace are propagated. */
  from?: FastifyRequest;
  timeoutMs?: number;
}

export interface CallResponse {
  status: number;
  json<T = unknown>(): Promise<T>;
}

export interface RampartService {
  readonly name: string;
  readonly app: FastifyInstance;
  readonly logger: Logger;
  readonly metrics: Registry;
  readonly dataDir: string;
  /** The service's SQLite database in its own data directory (WAL, synchronous=FULL), opened once. */
  database(): DatabaseSync;
  /** The request's verified user; throws a 401 error when the request carried no token. */
  user(req: FastifyRequest): TokenIdentity;
  /** Calls a service this one may call (the manifest's `calls`). */
  call(peer: string, path: string, init?: CallInit): Promise<CallResponse>;
  /** The secrets the manifest grants this service (`secrets.get(name)`), read from the control plane over mTLS. */
  readonly secrets: ServiceSecrets;
  /**
   * The service's current X509-SVID (`spiffe://<td>/svc/<name>`), or null when the process was started
   * without a control plane (tests of other parts).
   */
  svid(): CurrentSvid | null;
  /**
   * Obtains the SVID (when the runtime names a control plane), then serves on the loopback port the
   * launcher assigned; resolves once ready.
   */
  start(): Promise<void>;
  /** Stops serving and closes the database. */
  close(): Promise<void>;
}

/**
 * Creates the runtime of the service this process runs. Call once at start, register routes on `app`,
 * then `await start()`.
 */
export function service(options: ServiceOptions = {}): RampartService {
  const runtime = options.runtime ?? readRuntime('service');
  const logger = options.logger ?? createLogger({ name: runtime.name });
  const registry = createMetrics(runtime.name);
  const verify =
    options.verifier ??
    createAccessTokenVerifier({
      issuer: runtime.identity.issuer,
      audience: runtime.identity.audience,
      jwksUri: runtime.identity.jwksUri,
    });
  const requests = new Counter({
    name: 'rampart_service_requests_total',
    help: 'Requests served, by route pattern, method and status class.',
    labelNames: ['route', 'method', 'status_class'],
    registers: [registry],
  });

  // mTLS when a control plane gives this service an SVID: the server exists from the start (routes
  // are registered on it before start()), its key and certificate are installed by start() and
  // swapped on each renewal (setSecureContext: new handshakes get the new SVID, open connections stay).
  const control = runtime.control;
  const trustDomain = control?.trustDomain ?? '';
  let tlsServer: HttpsServer | null = null;
  // The inbound policy: the runtime's snapshot, replaced live by newer versions from the control plane.
  const policy =
    control && runtime.policy
      ? createPolicySource({
          initial: runtime.policy,
          control,
          svid: () => (identity as SvidSource).current(),
          logger,
          registry,
          ...(options.policyRefreshMs ? { refreshMs: options.policyRefreshMs } : {}),
        })
      : null;
  if (control && !policy) {
    throw new RampartError('SDK_ERR_NO_POLICY', 'the runtime names a control plane but holds no inbound policy');
  }
  const serverFactory = control
    ? (handler: RequestListener) => {
        tlsServer = createHttpsServer(
          {
            // The handshake fails without a client certificate that chains to the bundle, or with an
            // expired one; the SPIFFE rules and the policy are checked per request below.
            requestCert: true,
            rejectUnauthorized: true,
            minVersion: SDK_TLS_DEFAULTS.minVersion,
            handshakeTimeout: SDK_TLS_DEFAULTS.handshakeTimeoutMs,
          },
          handler,
        );
        return tlsServer;
      }
    : undefined;
  const denials = new Counter({
    name: 'rampart_service_denials_total',
    help: 'Requests refused by the inbound policy or the caller certificate checks, by reason.',
    labelNames: ['reason'],
    registers: [registry],
  });

  const app = Fastify({
    ...(serverFactory ? { serverFactory: serverFactory as never } : {}),
    loggerInstance: logger as FastifyBaseLogger,
    // Per-request lines would double the gateway's access log; errors are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    bodyLimit: 1_048_576,
    return503OnClosing: true,
  });
  app.decorateRequest('user', null);
  app.decorateRequest('caller', null);

  // Per connection: the caller's identity is the certificate's, checked once (exactly one URI SAN,
  // SPIFFE leaf rules, our trust domain: core/spiffe.ts).
  const identities = new WeakMap<object, string | null>();
  const deny = (req: FastifyRequest, reason: string, caller: string | null, path: string) => {
    denials.inc({ reason });
    // The decision event goes to the audit log (spooled, then delivered); the log line stays for operators.
    audit?.emit({
      component: runtime.name,
      action: 'http.request',
      decision: 'deny',
      reason,
      resource: path || undefined,
      actor: caller ? { spiffeId: caller } : undefined,
      requestId: String(req.id),
      detail: {
        method: req.method,
        status: 403,
        // A version means something only within its epoch (a restarted control plane starts a new one).
        policyEpoch: policy?.epoch() ?? null,
        policyVersion: policy?.version() ?? null,
      },
    });
    req.log.warn(
      {
        event: 'decision',
        decision: 'deny',
        reason,
        caller,
        method: req.method,
        path,
        requestId: req.id,
        policyEpoch: policy?.epoch() ?? null,
        policyVersion: policy?.version() ?? null,
      },
      'request refused by policy',
    );
    return new RampartError('SDK_ERR_FORBIDDEN', 'forbidden', { status: 403 });
  };
  if (control && policy) {
    // A callback hook, not an async one: every step is synchronous, so no promise and no microtask turn
    // per request. A throw here still reaches the error handler (fastify's hook runner catches it).
    app.addHook('onRequest', (req, _reply, done) => {
      const socket = req.raw.socket as TLSSocket;
      let caller = identities.get(socket);
      if (caller === undefined) {
        try {
          const peer = socket.getPeerX509Certificate();
          caller = peer ? svidIdentity(peer, trustDomain).id : null;
        } catch (err) {
          req.log.warn({ code: (err as RampartError).code }, 'caller certificate is not a valid SVID');
          caller = null;
        }
        identities.set(socket, caller);
      }
      const target = req.raw.url ?? '';
      let path: string;
      try {
        path = canonicalizeTarget(target).path;
      } catch {
        return done(deny(req, 'path', caller, ''));
      }
      if (caller === null) return done(deny(req, 'certificate', null, path));
      // What is matched must be what is routed: a non-canonical target is refused, not normalized.
      const query = target.indexOf('?');
      if (path !== (query === -1 ? target : target.slice(0, query))) return done(deny(req, 'path', caller, path));
      const decision = policy.decide(caller, req.method, path);
      if (!decision.allowed) return done(deny(req, decision.reason, caller, path));
      req.caller = caller;
      done();
    });
  }

  // Defense in depth: the gateway verified the token already; the service verifies it again.
  app.addHook('onRequest', async (req) => {
    const header = req.headers.authorization;
    if (header === undefined) return;
    if (!/^bearer /i.test(header)) throw new RampartError('SDK_ERR_INVALID_TOKEN', 'invalid token', { status: 401 });
    req.user = await verify(header.slice(7));
  });
  app.addHook('onResponse', async (req, reply) => {
    requests.inc({
      route: req.routeOptions.url ?? 'unmatched',
      method: req.method,
      status_class: `${Math.floor(reply.statusCode / 100)}xx`,
    });
  });
  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, req, reply) => {
    const errorId = newErrorId();
    const status = err instanceof RampartError ? err.status : (err.statusCode ?? 500);
    if (status >= 500) req.log.error({ err, errorId }, 'request failed');
    else req.log.info({ errorId, code: (err as RampartError).code, status }, 'request refused');
    if (status === 401) reply.header('www-authenticate', 'Bearer realm="rampart", error="invalid_token"');
    const message = status < 500 && (err.validation || err instanceof RampartError) ? err.message : undefined;
    return reply
      .status(status)
      .send({ error: message ?? (status >= 500 ? 'internal_error' : 'bad_request'), error_id: errorId });
  });

  let db: DatabaseSync | null = null;
  let identity: SvidSource | null = null;
  /** One dispatcher per peer, rebuilt when the SVID or bundle changes (renewals). */
  let dispatchers = new Map<string, Agent>();
  /**
   * The client TLS context of the current SVID, built once: given PEM options, every new connection
   * would parse the bundle, certificate and key again (≈ 0.9 ms of CPU per handshake, bench/mtls.bench.ts).
   */
  let clientContext: SecureContext | null = null;
  const peerDispatcher = (peer: string): Agent | undefined => {
    if (!control || !identity) return undefined;
    let agent = dispatchers.get(peer);
    if (!agent) {
      const svid = identity.current();
      clientContext ??= createSecureContext({
        ca: svid.bundlePem,
        cert: svid.certificatePem,
        key: svid.keyPem,
        minVersion: SDK_TLS_DEFAULTS.minVersion,
      });
      agent = new Agent({
        connections: SDK_TLS_DEFAULTS.peerConnections,
        connect: {
          secureContext: clientContext,
          // The server must be exactly the peer we meant to call; its host name means nothing.
          checkServerIdentity: spiffeServerCheck(serviceSpiffeId(trustDomain, peer).id, trustDomain),
        },
      });
      dispatchers.set(peer, agent);
    }
    return agent;
  };
  const installSvid = (svid: CurrentSvid) => {
    tlsServer?.setSecureContext({
      key: svid.keyPem,
      cert: svid.certificatePem,
      ca: svid.bundlePem,
      minVersion: SDK_TLS_DEFAULTS.minVersion,
    });
    // New calls use the new SVID; calls in flight finish on the old connections, then those close.
    const old = dispatchers;
    dispatchers = new Map();
    clientContext = null;
    for (const agent of old.values()) void agent.close().catch(() => {});
  };
  let admin: Awaited<ReturnType<typeof startAdminServer>> | null = null;
  let audit: AuditClient | null = null;
  const secrets = createServiceSecrets({
    ...options.secrets,
    control: control ?? null,
    svid: () => identity?.current() ?? null,
    logger,
    registry,
  });

  const svc: RampartService = {
    name: runtime.name,
    app,
    logger,
    metrics: registry,
    dataDir: runtime.dataDir,
    secrets,
    database() {
      if (!db) {
        db = new DatabaseSync(join(runtime.dataDir, `${runtime.name}.db`));
        // WAL for concurrent readers; FULL so an acknowledged write survives a crash or power loss.
        db.exec(
          'PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;',
        );
      }
      return db;
    },
    user(req) {
      if (!req.user) throw new RampartError('SDK_ERR_NO_TOKEN', 'authentication required', { status: 401 });
      return req.user;
    },
    async call(peer, path, init = {}) {
      const base = runtime.peers[peer];
      if (!base) {
        throw new RampartError('SDK_ERR_CALL_NOT_ALLOWED', `the manifest does not let ${runtime.name} call ${peer}`, {
          status: 500,
        });
      }
      const headers: Record<string, string> = {};
      const from = init.from;
      if (from?.headers.authorization) headers.authorization = from.headers.authorization;
      if (from) headers['x-request-id'] = String(from.id);
      const traceparent = from?.headers.traceparent;
      if (typeof traceparent === 'string') headers.traceparent = traceparent;
      if (init.json !== undefined) headers['content-type'] = 'application/json';
      const res = await undiciRequest(new URL(path, base), {
        method: (init.method ?? (init.json === undefined ? 'GET' : 'POST')) as 'GET',
        headers,
        body: init.json === undefined ? null : JSON.stringify(init.json),
        dispatcher: peerDispatcher(peer),
        headersTimeout: init.timeoutMs ?? 10_000,
        bodyTimeout: init.timeoutMs ?? 10_000,
      });
      return { status: res.statusCode, json: async <T>() => (await res.body.json()) as T };
    },
    svid() {
      return identity?.current() ?? null;
    },
    async start() {
      if (runtime.control) {
        if (!runtime.joinToken) {
          throw new RampartError('SDK_ERR_NO_JOIN_TOKEN', 'the runtime names a control plane but holds no join token');
        }
        identity = createSvidSource({
          control: runtime.control,
          joinToken: runtime.joinToken,
          expectedId: serviceSpiffeId(runtime.control.trustDomain, runtime.name).id,
          logger,
          registry,
          ...(options.svidSchedule ? { schedule: options.svidSchedule } : {}),
        });
        installSvid(await identity.start());
        identity.onRenewed(installSvid);
        const svidSource = identity;
        const controlTarget = runtime.control;
        audit = await createAuditClient({
          dir: join(runtime.dataDir, AUDIT_CLIENT_DEFAULTS.spoolDirectory),
          target: () => {
            const svid = svidSource.current();
            return {
              control: { ...controlTarget, bundle: svid.bundlePem },
              cert: svid.certificatePem,
              key: svid.keyPem,
            };
          },
          logger,
          registry,
          ...(options.audit ? { limits: options.audit } : {}),
        });
        await policy?.start();
      }
      await app.listen({ host: '127.0.0.1', port: runtime.port });
      admin = await startAdminServer({
        port: runtime.adminPort,
        registry,
        logger,
        readiness: {
          listening: () => app.server.listening,
          // An expired SVID cannot serve or call anyone: not ready (renewals keep being retried).
          svid: () => identity === null || identity.current().notAfter > Date.now(),
        },
      });
      logger.info({ port: runtime.port }, 'service listening');
      onShutdown(logger, async () => {
        admin?.drain();
        await svc.close();
      });
    },
    async close() {
      identity?.close();
      policy?.close();
      await app.close();
      for (const agent of dispatchers.values()) await agent.close().catch(() => {});
      await secrets.close();
      await audit?.close();
      audit = null;
      await admin?.close();
      db?.close();
      db = null;
    },
  };
  return svc;
}
