import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { newErrorId, RampartError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { CertificateAuthority, IssuedSvid } from '../ca/index.ts';
import type { SvidResponse } from './client.ts';
import { CONTROL_API_DEFAULTS } from './defaults.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';
import { createCredentialCheck } from './launcher-credential.ts';
import {
  type ApiHandler,
  type ApiRoute,
  type ApiRoutes,
  clientCertificate,
  integerField,
  parseJson,
  stringField,
} from './request.ts';

/** A refused request, for logs now and the audit log later (issue 4: "refused and audited"). */
export interface ApiRefusal {
  route: string;
  code: string;
  status: number;
  errorId: string;
  /** Internal detail (never sent to the client). */
  detail?: Record<string, unknown>;
}

/** The server's own key and certificate (PEM). */
export interface ServerCredentials {
  key: string;
  cert: string;
}

export interface ControlApiOptions {
  ca: CertificateAuthority;
  /** The launcher's bearer credential for minting join tokens. */
  launcherCredential: string;
  /** The control plane's own server certificate (see server-certificate.ts). */
  credentials: () => ServerCredentials;
  logger: Logger;
  /**
   * Called for every refusal. Seam for the audit log: the default logs at warn. Must not throw.
   */
  onRefusal?: (refusal: ApiRefusal) => void;
  /**
   * Routes of the other control-plane modules (policy, secrets, audit), served beside the CA's on the
   * same listener and TLS. A key that repeats a route is refused at start.
   */
  routes?: ApiRoutes[];
  /** Overrides of {@link CONTROL_API_DEFAULTS}. */
  limits?: Partial<Record<keyof typeof CONTROL_API_DEFAULTS, number>>;
}

export interface ControlApi {
  readonly server: Server;
  /** Listens on 127.0.0.1 (port 0: any). Resolves with the port. */
  listen(port: number): Promise<number>;
  /** Installs the current server certificate and bundle for new connections (after renewal or rotation). */
  refreshTls(): void;
  close(): Promise<void>;
}

function svidBody(svid: IssuedSvid): SvidResponse {
  return {
    spiffeId: svid.spiffeId,
    certificate: svid.certificatePem,
    chain: [svid.certificatePem],
    notBefore: svid.notBefore,
    notAfter: svid.notAfter,
    bundle: { sequence: svid.bundle.sequence, pem: svid.bundle.pem },
  };
}

/**
 * The control plane's HTTPS API (issue 4 "Attestation"), loopback only, node:https:
 *
 * | route | authenticated by | does |
 * | --- | --- | --- |
 * | `POST /v1/join-tokens` `{service}` | launcher credential (bearer) | mints a single-use join token |
 * | `POST /v1/svids` `{token, csr}` | the join token | first SVID |
 * | `POST /v1/svids/renew` `{csr}` | the client certificate (current SVID) | next SVID for the same identity |
 * | `GET /v1/bundle` | nobody (public data) | CA certificates and sequence |
 * | `POST /v1/bundle/ack` `{sequence}` | the client certificate | records that its holder installed the bundle |
 *
 * TLS asks every client for a certificate but does not require one (join-token requests have none);
 * renewal requires one that verified against the bundle, and the identity is taken from it, never
 * from the request. Errors are `{error: <code>, error_id}` with no detail; every refusal goes to
 * `onRefusal`.
 */
export function createControlApi(options: ControlApiOptions): ControlApi {
  const limits = { ...CONTROL_API_DEFAULTS, ...options.limits };
  const { ca, logger } = options;
  const checkCredential = createCredentialCheck(options.launcherCredential);
  const onRefusal =
    options.onRefusal ??
    ((refusal: ApiRefusal) =>
      logger.warn({ event: 'control.api.refused', ...refusal }, 'control plane request refused'));

  const tlsOptions = () => {
    const { key, cert } = options.credentials();
    // minVersion is a secure-context option: setSecureContext would otherwise fall back to Node's default.
    return { key, cert, ca: ca.bundle().pem, minVersion: 'TLSv1.2' as const };
  };

  const caHandlers: Record<string, ApiHandler> = {
    'POST /v1/join-tokens': async (req, body) => {
      if (!checkCredential(req.headers.authorization)) throw apiError(CONTROL_API_ERRORS.unauthorized);
      const service = stringField(parseJson(body), 'service', 64);
      const minted = ca.mintJoinToken(service);
      return { token: minted.token, expiresAt: minted.expiresAt };
    },
    'POST /v1/svids': async (_req, body) => {
      const json = parseJson(body);
      const token = stringField(json, 'token', 128);
      const csr = stringField(json, 'csr', limits.maxBodyBytes);
      return svidBody(await ca.issueWithJoinToken({ token, csr }));
    },
    'POST /v1/svids/renew': async (req, body) => {
      const peer = clientCertificate(req);
      const csr = stringField(parseJson(body), 'csr', limits.maxBodyBytes);
      return svidBody(await ca.renew({ peerCertificate: peer, csr }));
    },
    'GET /v1/bundle': async () => {
      const bundle = ca.bundle();
      return { sequence: bundle.sequence, pem: bundle.pem };
    },
    'POST /v1/bundle/ack': async (req, body) => {
      // The holder is the verified client certificate; the CA checks its serial was issued here.
      const peer = clientCertificate(req);
      const sequence = integerField(parseJson(body), 'sequence');
      ca.acknowledgeBundle(peer.serialNumber.toLowerCase(), sequence);
      return { acknowledged: sequence };
    },
  };

  const routes = new Map<string, ApiRoute>(Object.entries(caHandlers).map(([key, handle]) => [key, { handle }]));
  for (const module of options.routes ?? []) {
    for (const [key, route] of Object.entries(module)) {
      if (!/^(GET|POST) \/v1\/[a-z0-9/-]+$/.test(key))
        throw new Error(`control API route ${key}: not "<GET|POST> /v1/…"`);
      if (routes.has(key)) throw new Error(`control API route ${key} is defined twice`);
      routes.set(key, route);
    }
  }

  const send = (res: ServerResponse, status: number, value: unknown) => {
    const payload = Buffer.from(JSON.stringify(value));
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': payload.length,
      'cache-control': 'no-store',
    });
    res.end(payload);
  };

  const refuse = (res: ServerResponse, route: string, err: unknown) => {
    const errorId = newErrorId();
    const known = err instanceof RampartError;
    const code = known ? err.code : 'CA_ERR_INTERNAL';
    const status = known ? err.status : 500;
    if (status >= 500 && !known) logger.error({ err, errorId, route }, 'control plane request failed');
    try {
      onRefusal({ route, code, status, errorId, detail: known ? err.detail : undefined });
    } catch {
      // An observer's failure must not change the answer.
    }
    if (!res.headersSent) send(res, status, { error: code, error_id: errorId });
    else res.destroy();
  };

  const readBody = (req: IncomingMessage, maxBodyBytes: number): Promise<Buffer | null> =>
    new Promise((resolve, reject) => {
      const declared = req.headers['content-length'];
      if (declared !== undefined && Number(declared) > maxBodyBytes) {
        reject(apiError(CONTROL_API_ERRORS.tooLarge, { declared }));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBodyBytes) {
          req.pause();
          reject(apiError(CONTROL_API_ERRORS.tooLarge, { size }));
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => resolve(size === 0 ? null : Buffer.concat(chunks)));
      req.on('error', reject);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const route = `${req.method} ${req.url}`;
    const handler = routes.get(route);
    try {
      if (!handler) throw apiError(CONTROL_API_ERRORS.notFound, { method: req.method });
      let body: Buffer | null = null;
      if (req.method === 'POST') {
        const type = req.headers['content-type'];
        if (typeof type !== 'string' || !/^application\/json(\s*;\s*charset=utf-8)?$/i.test(type)) {
          throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'content-type' });
        }
        body = await readBody(req, handler.maxBodyBytes ?? limits.maxBodyBytes);
      }
      send(res, 200, await handler.handle(req, body));
    } catch (err) {
      // The route in refusals is one of the fixed routes or "unknown": never the raw target (log injection, size).
      refuse(res, handler ? route : 'unknown', err);
      if (err instanceof RampartError && err.code === CONTROL_API_ERRORS.tooLarge)
        res.once('finish', () => req.destroy());
    }
  };

  const server = createServer(
    {
      ...tlsOptions(),
      // Ask for a client certificate (renewal), accept connections without one (first issuance).
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: limits.handshakeTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      maxHeaderSize: limits.maxHeaderBytes,
    },
    (req, res) => void handle(req, res),
  );
  server.maxConnections = limits.maxConnections;

  return {
    server,
    listen(port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: '127.0.0.1', port }, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      });
    },
    refreshTls() {
      server.setSecureContext(tlsOptions());
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}
