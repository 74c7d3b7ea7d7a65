import { Counter, Gauge, type Registry } from 'prom-client';
import { type ControlTarget, controlRequest } from '../control/api/client.ts';
import { CONTROL_API_ERRORS } from '../control/api/errors.ts';
import type { CurrentSvid } from '../control/api/svid-source.ts';
import { POLICY_DEFAULTS } from '../control/policy/defaults.ts';
import type { PolicyRequest, PolicyResponse } from '../control/policy/wire.ts';
import { RampartError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { InboundPolicy } from '../core/runtime.ts';
import { type CallerDecision, compileCallerPolicy, type PolicyDecision } from './caller-policy.ts';

/** Why a refresh did not install a policy (the label of `rampart_service_policy_refresh_failures_total`). */
export const POLICY_REFRESH_FAILURES = {
  /** The control plane could not be reached or answered something that is not JSON. */
  unavailable: 'unavailable',
  /** The control plane refused the request (an error code: no policy loaded yet, not found, ...). */
  refused: 'refused',
  /** The answer or its policy is malformed: refused whole, the old policy kept. */
  malformed: 'malformed',
  /** The answer's version is lower than the one in force: versions never go back. */
  stale: 'stale',
} as const;

export type PolicyRefreshOutcome = 'updated' | 'unchanged' | 'failed';

export interface PolicySourceOptions {
  /** The policy the service was started with (the runtime's; the launcher's snapshot is version 0). */
  initial: InboundPolicy;
  /** Where the control plane is. Its server certificate is verified with the current SVID's bundle. */
  control: { url: string; trustDomain: string };
  /** The service's current SVID: its client certificate for the request, its bundle for the server. */
  svid: () => CurrentSvid;
  logger: Logger;
  registry: Registry;
  /** Poll interval (default POLICY_DEFAULTS.refreshMs); tests shorten it. */
  refreshMs?: number;
  random?: () => number;
  /** Default: `controlRequest` (tests substitute a fake control plane). */
  request?: typeof controlRequest;
}

export interface PolicySource {
  /** Decides with the policy in force at the moment of the call. */
  decide(caller: string, method: string, path: string): PolicyDecision;
  /** The version in force. */
  version(): number;
  /** Asks the control plane once now (concurrent calls share one request). Never rejects. */
  refresh(): Promise<PolicyRefreshOutcome>;
  /** One refresh, then one every `refreshMs` (longer while the control plane does not answer). */
  start(): Promise<void>;
  close(): void;
}

interface InForce {
  version: number;
  decide: CallerDecision;
}

/**
 * A service's inbound policy, kept current from the control plane (issue 4: "policy updates from a
 * changed manifest reach every service without a restart"). The service asks `POST /v1/policy` over
 * mutual TLS with its SVID every few seconds; a higher version is compiled in full first and then
 * swapped in with one assignment, so each request is decided by exactly one version (the one in force
 * when its check ran). A version lower than the one in force is refused (versions never go back); a
 * malformed policy is refused whole with a log line and the old one keeps deciding; when the control
 * plane is down the last policy stays in force and polls back off up to POLICY_DEFAULTS.retryMaxMs.
 *
 * Metrics: `rampart_service_policy_version`, `rampart_service_policy_updates_total`,
 * `rampart_service_policy_refresh_failures_total{reason}` (reasons: POLICY_REFRESH_FAILURES).
 *
 * Throws SDK_ERR_POLICY_INVALID when the initial policy is malformed.
 */
export function createPolicySource(options: PolicySourceOptions): PolicySource {
  const { logger, control } = options;
  const refreshMs = options.refreshMs ?? POLICY_DEFAULTS.refreshMs;
  const random = options.random ?? Math.random;
  const request = options.request ?? controlRequest;
  // Compiled (and so validated) before anything reads it: the runtime is JSON from outside the process.
  const initialDecide = compileCallerPolicy(options.initial, control.trustDomain);
  let inForce: InForce = { version: options.initial.version, decide: initialDecide };
  const versionGauge = new Gauge({
    name: 'rampart_service_policy_version',
    help: 'Version of the inbound policy in force (0: the launcher snapshot the service started with).',
    registers: [options.registry],
  });
  const updates = new Counter({
    name: 'rampart_service_policy_updates_total',
    help: 'Newer inbound policies installed from the control plane.',
    registers: [options.registry],
  });
  const failuresTotal = new Counter({
    name: 'rampart_service_policy_refresh_failures_total',
    help: 'Policy refreshes that installed nothing, by reason (unavailable, refused, malformed, stale); the last policy stays in force.',
    labelNames: ['reason'],
    registers: [options.registry],
  });
  for (const reason of Object.values(POLICY_REFRESH_FAILURES)) failuresTotal.inc({ reason }, 0);
  versionGauge.set(inForce.version);

  let failures = 0;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  let running: Promise<PolicyRefreshOutcome> | null = null;

  const fail = (
    reason: keyof typeof POLICY_REFRESH_FAILURES,
    fields: Record<string, unknown>,
  ): PolicyRefreshOutcome => {
    failures += 1;
    failuresTotal.inc({ reason });
    const entry = { reason, failures, version: inForce.version, ...fields };
    // Logged when a streak starts, not every few seconds while it lasts (the counter counts each). A
    // malformed or older policy is a control-plane defect: an error; an unreachable one, a warning.
    if (failures > 1) logger.debug(entry, 'policy refresh failed again');
    else if (reason === 'malformed' || reason === 'stale')
      logger.error(entry, 'policy update refused: keeping the policy in force');
    else logger.warn(entry, 'policy refresh failed: keeping the policy in force');
    return 'failed';
  };

  const refreshOnce = async (): Promise<PolicyRefreshOutcome> => {
    const svid = options.svid();
    const target: ControlTarget = {
      url: control.url,
      trustDomain: control.trustDomain,
      bundle: svid.bundlePem,
      timeoutMs: POLICY_DEFAULTS.requestTimeoutMs,
    };
    const known = inForce.version;
    let answer: unknown;
    try {
      answer = await request<PolicyResponse>(target, {
        method: 'POST',
        path: '/v1/policy',
        body: { knownVersion: known } satisfies PolicyRequest,
        cert: svid.certificatePem,
        key: svid.keyPem,
      });
    } catch (err) {
      const code = err instanceof RampartError ? err.code : 'unknown';
      return fail(code === CONTROL_API_ERRORS.unavailable ? 'unavailable' : 'refused', { code });
    }
    const res = answer as Partial<PolicyResponse> | null;
    const version = res?.version;
    if (
      typeof res !== 'object' ||
      res === null ||
      typeof version !== 'number' ||
      !Number.isSafeInteger(version) ||
      version < 0
    ) {
      return fail('malformed', { detail: 'version' });
    }
    // Another refresh may have installed a policy meanwhile: compare with what is in force now.
    if (version === inForce.version) {
      if (failures > 0) logger.info({ version }, 'policy refresh works again');
      failures = 0;
      return 'unchanged';
    }
    if (version < inForce.version) return fail('stale', { offered: version });
    let decide: CallerDecision;
    try {
      decide = compileCallerPolicy({ version, callers: res.callers as InboundPolicy['callers'] }, control.trustDomain);
    } catch (err) {
      return fail('malformed', { offered: version, detail: (err as RampartError).detail?.reason ?? 'unknown' });
    }
    const previous = inForce.version;
    inForce = { version, decide };
    versionGauge.set(version);
    updates.inc();
    failures = 0;
    logger.info(
      { version, previousVersion: previous, callers: Object.keys(res.callers ?? {}).length },
      'inbound policy updated',
    );
    return 'updated';
  };

  const refresh = (): Promise<PolicyRefreshOutcome> => {
    running ??= refreshOnce()
      .catch((err: unknown) => {
        logger.error({ err }, 'policy refresh failed unexpectedly');
        return 'failed' as const;
      })
      .finally(() => {
        running = null;
      });
    return running;
  };

  const schedule = () => {
    if (closed) return;
    const base =
      failures === 0 ? refreshMs : Math.min(POLICY_DEFAULTS.retryMaxMs, refreshMs * 2 ** Math.min(failures, 20));
    const delay = base * (1 + random() * POLICY_DEFAULTS.refreshJitterFraction);
    timer = setTimeout(() => void refresh().then(schedule), delay);
    timer.unref();
  };

  return {
    decide(caller, method, path) {
      return inForce.decide(caller, method, path);
    },
    version() {
      return inForce.version;
    },
    refresh,
    async start() {
      // Before the service listens: a service restarted long after the launcher read the manifest
      // must not serve its stale snapshot for a whole interval. Failure keeps the snapshot.
      await refresh();
      schedule();
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
