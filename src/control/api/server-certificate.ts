import type { Logger } from '../../core/logger.ts';
import type { CertificateAuthority } from '../ca/index.ts';
import { COMPONENT_SERVICE_NAMES, SVID_RENEWAL_DEFAULTS } from './defaults.ts';
import { renewalDelayMs } from './renewal-schedule.ts';
import type { ServerCredentials } from './server.ts';
import { createWorkloadKey } from './workload-key.ts';

export interface ServerCertificate {
  current(): ServerCredentials & { notAfter: number };
  /** Re-issues now. */
  renew(): Promise<void>;
  /**
   * Records, in the CA, that this process installed bundle `sequence` for its certificates. The
   * control plane is the holder of its own SVIDs: without this they would count as holders behind
   * every new bundle, and a forced rotation could never activate before the propagation time ends.
   * Every unexpired certificate it issued itself is acknowledged (a direct re-issue does not mark the
   * previous one superseded, as a renewal does).
   */
  acknowledge(sequence: number): void;
  close(): void;
}

/**
 * The control plane's own X509-SVID, `spiffe://<td>/svc/control`, issued directly by its CA (it is
 * the CA's own process: attestation `direct`) and re-issued at ½ of its lifetime, like every
 * workload's. `onRenewed` installs it in the API's TLS context.
 */
export async function createServerCertificate(options: {
  ca: CertificateAuthority;
  logger: Logger;
  onRenewed: () => void;
  random?: () => number;
}): Promise<ServerCertificate> {
  const { ca, logger } = options;
  const random = options.random ?? Math.random;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  const issue = async () => {
    const key = await createWorkloadKey();
    const svid = await ca.issue({ csr: key.csrPem, serviceName: COMPONENT_SERVICE_NAMES.control });
    issued.set(svid.serial, svid.notAfter);
    return { key: key.keyPem, cert: svid.certificatePem, notBefore: svid.notBefore, notAfter: svid.notAfter };
  };
  /** Serial → notAfter of every certificate issued to this process that may still be valid. */
  const issued = new Map<string, number>();
  let held = await issue();
  const arm = (delayMs: number) => {
    if (closed) return;
    // One timer at a time: a direct renew() replaces the armed one, which close() would otherwise miss.
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void renew(), Math.max(0, delayMs));
    timer.unref();
  };
  const scheduleNext = () => arm(renewalDelayMs(held, Date.now(), SVID_RENEWAL_DEFAULTS, random));
  const renew = async () => {
    try {
      held = await issue();
      options.onRenewed();
      scheduleNext();
    } catch (err) {
      logger.error({ err }, 'control plane server certificate renewal failed; retrying');
      arm(SVID_RENEWAL_DEFAULTS.retryMaxMs);
    }
  };
  scheduleNext();
  return {
    current: () => ({ key: held.key, cert: held.cert, notAfter: held.notAfter }),
    renew,
    acknowledge(sequence) {
      const now = Date.now();
      for (const [serial, notAfter] of issued) {
        if (notAfter <= now) {
          issued.delete(serial);
          continue;
        }
        try {
          ca.acknowledgeBundle(serial, sequence);
        } catch (err) {
          logger.warn({ err, serial }, 'control plane could not acknowledge its own bundle');
        }
      }
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}
