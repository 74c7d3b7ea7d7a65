import { createPrivateKey, X509Certificate } from 'node:crypto';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type ControlTarget, controlRequest } from '../control/api/client.ts';
import { SVID_RENEWAL_DEFAULTS } from '../control/api/defaults.ts';
import type { EdgeCertificateResponse } from '../control/api/edge-routes.ts';
import { apiError, CONTROL_API_ERRORS } from '../control/api/errors.ts';
import { retryDelayMs } from '../control/api/renewal-schedule.ts';
import { createRenewingCredential } from '../control/api/renewing-credential.ts';
import { createWorkloadKey } from '../control/api/workload-key.ts';
import { isRampartError, RampartError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';

/** The edge certificate the gateway serves now (`tls: auto`). */
export interface EdgeCertificate {
  /** PKCS#8 PEM; made in this process, never sent anywhere. */
  keyPem: string;
  /** The leaf, PEM. */
  certificatePem: string;
  names: readonly string[];
  notBefore: number;
  notAfter: number;
}

/** The gateway's SVID as the edge route wants it: the client certificate of the mTLS request. */
export interface ClientCredentials {
  cert: string;
  key: string;
}

export interface EdgeCertificateSourceOptions {
  /** The control plane, trusted with the newest bundle the SVID source holds. */
  control: () => ControlTarget;
  /** The gateway's current SVID (the only identity the route accepts). */
  credentials: () => ClientCredentials;
  logger: Logger;
  registry: Registry;
  /** Overrides of the renewal schedule (the SVIDs' own, SVID_RENEWAL_DEFAULTS). */
  schedule?: Partial<Record<keyof typeof SVID_RENEWAL_DEFAULTS, number>>;
  /**
   * Whether the credentials can still authenticate (the SVID has not expired). `start()` waits for an
   * unreachable control plane only while this holds: with an expired SVID only a restart with a new
   * join token helps. Default: always.
   */
  credentialsValid?: () => boolean;
  clock?: () => number;
  random?: () => number;
}

export interface EdgeCertificateSource {
  /** The certificate in service (after `start()` resolved). */
  current(): EdgeCertificate;
  /** Called after each renewal with the new certificate (install it in every listener). */
  onRenewed(listener: (certificate: EdgeCertificate) => void): void;
  /**
   * Obtains the first certificate, then schedules renewals. While the control plane cannot be reached
   * it waits (backoff up to `retryMaxMs`, logged once when the wait begins and once when it ends) until
   * it answers, `close()` is called or the credentials expire; a refusal or a bad answer rejects at once.
   */
  start(): Promise<EdgeCertificate>;
  /** Renews now (tests). */
  renewNow(): Promise<EdgeCertificate>;
  /** Stops renewing. */
  close(): void;
}

/** Asks the control plane for an edge certificate over mTLS with the gateway's SVID. */
export function requestEdgeCertificate(
  target: ControlTarget,
  credentials: ClientCredentials,
  csr: string,
): Promise<EdgeCertificateResponse> {
  return controlRequest(target, { method: 'POST', path: '/v1/edge-certificates', body: { csr }, ...credentials });
}

/**
 * Checks an answer before anything serves it: a certificate for our key, chained to a CA of the bundle
 * we trust the control plane with, inside its validity, with names.
 */
function accept(res: EdgeCertificateResponse, keyPem: string, bundlePem: string, now: number): EdgeCertificate {
  try {
    const leaf = new X509Certificate(res.certificate);
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) {
      throw apiError(CONTROL_API_ERRORS.wrongIdentity, { reason: 'certificate is not for our key' });
    }
    const issuers = splitPem(bundlePem).map((pem) => new X509Certificate(pem));
    if (!issuers.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey))) {
      throw apiError(CONTROL_API_ERRORS.wrongIdentity, { reason: 'not issued by a CA of the bundle' });
    }
    const notBefore = leaf.validFromDate.getTime();
    const notAfter = leaf.validToDate.getTime();
    if (notAfter <= now || !Array.isArray(res.names) || res.names.length === 0) {
      throw apiError(CONTROL_API_ERRORS.unavailable, { reason: 'expired or nameless certificate' });
    }
    return { keyPem, certificatePem: res.certificate, names: res.names.map(String), notBefore, notAfter };
  } catch (err) {
    if (err instanceof RampartError) throw err;
    throw apiError(CONTROL_API_ERRORS.wrongIdentity, { reason: 'unparseable' }, err);
  }
}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * The gateway's edge certificate (`tls: auto`): a fresh P-256 key per certificate (only its CSR
 * leaves the process), obtained from the control plane over mTLS with the gateway's SVID after that
 * SVID, and renewed at ½ of its lifetime with jitter, like SVIDs (svid-source.ts). When the control
 * plane is away the gateway keeps serving the certificate it has and retries with backoff; at a
 * quarter of the lifetime left it logs at error and sets `rampart_gateway_edge_certificate_renewal_overdue`.
 *
 * Metrics: `rampart_gateway_edge_certificate_expiry_timestamp_seconds`,
 * `rampart_gateway_edge_certificate_renewals_total{outcome}`, `rampart_gateway_edge_certificate_renewal_overdue`.
 */
export function createEdgeCertificateSource(options: EdgeCertificateSourceOptions): EdgeCertificateSource {
  const clock = options.clock ?? Date.now;
  const random = options.random ?? Math.random;
  const timings = { ...SVID_RENEWAL_DEFAULTS, ...options.schedule };
  const { logger } = options;
  let closed = false;
  let wake: (() => void) | null = null;
  const obtain = async (): Promise<EdgeCertificate> => {
    const key = await createWorkloadKey();
    const target = options.control();
    const res = await requestEdgeCertificate(target, options.credentials(), key.csrPem);
    return accept(res, key.keyPem, target.bundle, clock());
  };
  /**
   * The first certificate. The gateway cannot serve without it, and exiting would not bring the control
   * plane back sooner (the launcher would restart the gateway into the same wait, spending its restart
   * budget and a join token each time): wait for an unreachable control plane, saying so once.
   */
  const obtainFirst = async (): Promise<EdgeCertificate> => {
    const key = await createWorkloadKey();
    const began = clock();
    let failures = 0;
    for (;;) {
      const target = options.control();
      let res: EdgeCertificateResponse;
      try {
        res = await requestEdgeCertificate(target, options.credentials(), key.csrPem);
      } catch (err) {
        const away = isRampartError(err, CONTROL_API_ERRORS.unavailable);
        if (!away || closed || !(options.credentialsValid?.() ?? true)) throw err;
        failures += 1;
        if (failures === 1) {
          logger.warn(
            { code: err.code, control: target.url },
            'control plane unreachable: waiting for the edge certificate (tls: auto); the listener opens once it is issued',
          );
        }
        await new Promise<void>((resolve) => {
          // The first wait is `retryInitialMs` (halved at random at most), as the renewals' first retry.
          const timer = setTimeout(resolve, retryDelayMs(failures - 1, timings, random));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
        if (closed) throw err;
        continue;
      }
      if (failures > 0) {
        logger.info({ attempts: failures + 1, waitedMs: clock() - began }, 'control plane reachable again');
      }
      return accept(res, key.keyPem, target.bundle, clock());
    }
  };
  const certificate = createRenewingCredential<EdgeCertificate>({
    names: { name: 'edge certificate', short: 'certificate', first: 'the edge certificate' },
    obtainFirst,
    obtainNext: obtain,
    describe: (value) => ({ names: value.names }),
    metrics: {
      expiry: new Gauge({
        name: 'rampart_gateway_edge_certificate_expiry_timestamp_seconds',
        help: 'When the edge certificate from the local CA (tls: auto) expires (Unix seconds).',
        registers: [options.registry],
      }),
      renewals: new Counter({
        name: 'rampart_gateway_edge_certificate_renewals_total',
        help: 'Edge certificate renewals attempted (tls: auto), by outcome (ok, error).',
        labelNames: ['outcome'],
        registers: [options.registry],
      }),
      overdue: new Gauge({
        name: 'rampart_gateway_edge_certificate_renewal_overdue',
        help: '1 when renewal keeps failing and less than a quarter of the edge certificate lifetime is left.',
        registers: [options.registry],
      }),
    },
    logger: options.logger,
    timings: options.schedule,
    clock,
    random: options.random,
  });
  return {
    current: () => certificate.current(),
    onRenewed: (listener) => certificate.onRenewed(listener),
    start: () => certificate.start(),
    renewNow: () => certificate.renewNow(),
    close: () => {
      closed = true;
      wake?.();
      certificate.close();
    },
  };
}
