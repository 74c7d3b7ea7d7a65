import { createPrivateKey, X509Certificate } from 'node:crypto';
import { Counter, Gauge, type Registry } from 'prom-client';
import { RampartError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { svidIdentity } from '../../core/spiffe.ts';
import {
  acknowledgeBundle,
  type ControlTarget,
  requestBundle,
  requestRenewal,
  requestSvid,
  type SvidResponse,
} from './client.ts';
import type { SVID_RENEWAL_DEFAULTS } from './defaults.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';
import { createRenewingCredential } from './renewing-credential.ts';
import { createWorkloadKey, type WorkloadKey } from './workload-key.ts';

/** The SVID a workload holds now: what its TLS contexts are built from. */
export interface CurrentSvid {
  spiffeId: string;
  /** PKCS#8 PEM; never leaves the process. */
  keyPem: string;
  /** Leaf first, PEM. */
  certificatePem: string;
  notBefore: number;
  notAfter: number;
  /** CA certificates (PEM) to verify peers with. */
  bundlePem: string;
  bundleSequence: number;
}

/** How a workload obtains and keeps its SVID. */
export interface SvidSourceOptions {
  control: ControlTarget;
  /** The single-use join token for the first SVID. */
  joinToken: string;
  /** The SPIFFE ID this workload must receive (the CA's answer is checked against it). */
  expectedId: string;
  logger: Logger;
  registry: Registry;
  /** Overrides of {@link SVID_RENEWAL_DEFAULTS}. */
  schedule?: Partial<Record<keyof typeof SVID_RENEWAL_DEFAULTS, number>>;
  clock?: () => number;
  random?: () => number;
}

export interface SvidSource {
  /** The current SVID (after `start()` resolved). */
  current(): CurrentSvid;
  /** Called after each successful renewal, with the new SVID (hot-swap TLS contexts here). */
  onRenewed(listener: (svid: CurrentSvid) => void): void;
  /** Obtains the first SVID (retrying with backoff until the deadline), then schedules renewals. */
  start(): Promise<CurrentSvid>;
  /** Renews now (tests; a bundle change). */
  renewNow(): Promise<CurrentSvid>;
  /** Fetches the bundle now and installs it when newer (also runs every `bundleRefreshMs`). Never rejects. */
  refreshBundle(): Promise<void>;
  /** Stops renewing. */
  close(): void;
}

/**
 * Checks an SVID the control plane returned before it is installed: it must be an X509-SVID of our
 * trust domain naming exactly `expectedId` (a compromised or confused control plane must not hand us
 * someone else's identity), for the key we generated, and its dates must make sense.
 */
function acceptSvid(res: SvidResponse, keyPem: string, expectedId: string, trustDomain: string): CurrentSvid {
  try {
    const leaf = new X509Certificate(res.certificate);
    const id = svidIdentity(leaf, trustDomain);
    if (id.id !== expectedId) throw apiError(CONTROL_API_ERRORS.wrongIdentity, { expected: expectedId, got: id.id });
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) {
      throw apiError(CONTROL_API_ERRORS.wrongIdentity, { reason: 'certificate is not for our key' });
    }
    if (typeof res.bundle?.pem !== 'string' || !Number.isSafeInteger(res.bundle.sequence)) {
      throw apiError(CONTROL_API_ERRORS.unavailable, { reason: 'bundle' });
    }
    return {
      spiffeId: id.id,
      keyPem,
      certificatePem: res.certificate,
      notBefore: leaf.validFromDate.getTime(),
      notAfter: leaf.validToDate.getTime(),
      bundlePem: res.bundle.pem,
      bundleSequence: res.bundle.sequence,
    };
  } catch (err) {
    if (err instanceof RampartError) throw err;
    throw apiError(CONTROL_API_ERRORS.wrongIdentity, { reason: 'unparseable' }, err);
  }
}

/**
 * A workload's SVID, obtained with the join token and renewed over mTLS at ½ of its lifetime with
 * jitter. When the control plane is down the workload keeps the SVID it has (issue 4 "Control plane
 * down ≠ system down") and retries with exponential backoff; once less than a quarter of the lifetime
 * is left it logs at error and sets `rampart_svid_renewal_overdue`, well before expiry.
 *
 * Metrics: `rampart_svid_expiry_timestamp_seconds`, `rampart_svid_renewals_total{outcome}`,
 * `rampart_svid_renewal_overdue`.
 */
export function createSvidSource(options: SvidSourceOptions): SvidSource {
  const { logger, expectedId } = options;
  // The control plane is trusted with the newest bundle we hold (its server certificate may come from
  // a CA that was published after we started).
  let control: ControlTarget = { ...options.control };
  // The first key is generated once: a retry after a network failure reuses the same CSR.
  let firstKey: WorkloadKey | null = null;
  const svid = createRenewingCredential<CurrentSvid>({
    names: { name: 'SVID', short: 'SVID', first: 'the first SVID' },
    obtainFirst: async () => {
      firstKey ??= await createWorkloadKey();
      const res = await requestSvid(control, options.joinToken, firstKey.csrPem);
      return acceptSvid(res, firstKey.keyPem, expectedId, control.trustDomain);
    },
    obtainNext: async (current) => {
      const key = await createWorkloadKey();
      const res = await requestRenewal(control, { cert: current.certificatePem, key: current.keyPem }, key.csrPem);
      return acceptSvid(res, key.keyPem, expectedId, control.trustDomain);
    },
    describe: (value) => ({ spiffeId: value.spiffeId }),
    onInstall: (value) => {
      control = { ...control, bundle: value.bundlePem };
    },
    metrics: {
      expiry: new Gauge({
        name: 'rampart_svid_expiry_timestamp_seconds',
        help: 'When the current X509-SVID expires (Unix seconds).',
        registers: [options.registry],
      }),
      renewals: new Counter({
        name: 'rampart_svid_renewals_total',
        help: 'SVID renewals attempted, by outcome (ok, error).',
        labelNames: ['outcome'],
        registers: [options.registry],
      }),
      overdue: new Gauge({
        name: 'rampart_svid_renewal_overdue',
        help: '1 when renewal keeps failing and less than a quarter of the SVID lifetime is left.',
        registers: [options.registry],
      }),
    },
    logger,
    timings: options.schedule,
    clock: options.clock,
    random: options.random,
  });
  let bundleTimer: NodeJS.Timeout | null = null;

  /**
   * Polls the bundle (every `bundleRefreshMs`, the CA's refresh hint): a CA is published before it
   * signs anything, and peers must trust it by then (issue 4 "CA rotation without an outage"). A newer
   * bundle is installed (listeners run) and acknowledged to the CA over mTLS, which lets a forced
   * rotation activate as soon as every holder has it.
   */
  const refreshBundle = async () => {
    if (!svid.peek() || svid.closed) return;
    try {
      const bundle = await requestBundle(control);
      // Read after the request: a renewal that finished meanwhile must not be replaced by the SVID before it.
      const current = svid.peek();
      if (!current || bundle.sequence <= current.bundleSequence || typeof bundle.pem !== 'string') return;
      const next: CurrentSvid = { ...current, bundlePem: bundle.pem, bundleSequence: bundle.sequence };
      svid.replace(next);
      logger.info({ sequence: bundle.sequence }, 'trust bundle updated');
      await acknowledgeBundle(control, { cert: next.certificatePem, key: next.keyPem }, bundle.sequence);
    } catch (err) {
      logger.warn({ code: err instanceof RampartError ? err.code : 'unknown' }, 'trust bundle refresh failed');
    }
  };

  return {
    current: () => svid.current(),
    onRenewed: (listener) => svid.onRenewed(listener),
    async start() {
      const first = await svid.start();
      bundleTimer = setInterval(() => void refreshBundle(), svid.timings.bundleRefreshMs);
      bundleTimer.unref();
      return first;
    },
    renewNow: () => svid.renewNow(),
    refreshBundle,
    close() {
      svid.close();
      if (bundleTimer) clearInterval(bundleTimer);
    },
  };
}
