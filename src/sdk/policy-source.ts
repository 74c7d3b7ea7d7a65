import { Counter, Gauge, type Registry } from 'prom-client';
import { type ControlTarget, controlRequest } from '../control/api/client.ts';
import { CONTROL_API_ERRORS } from '../control/api/errors.ts';
import type { CurrentSvid } from '../control/api/svid-source.ts';
import { POLICY_DEFAULTS } from '../control/policy/defaults.ts';
import { callersDigest, POLICY_DIGEST_PATTERN, POLICY_EPOCH_PATTERN } from '../control/policy/digest.ts';
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
  /**
   * The answer or its policy is malformed (including rules that do not match the answer's digest, and
   * an answer without rules for a policy the service does not hold): refused whole, the old policy kept.
   */
  malformed: 'malformed',
  /** The answer's version is lower than the one in force in the same epoch: versions never go back. */
  stale: 'stale',
} as const;

export type PolicyRefreshOutcome = 'updated' | 'unchanged' | 'failed';

export interface PolicySourceOptions {
  /**
   * The policy the service was started with (the runtime's; the launcher's snapshot is version 0). It
   * belongs to no epoch, so the control plane's first answer replaces it whatever its version.
   */
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
  /** The epoch of the policy in force: null while the launcher's snapshot is (wire.ts). */
  epoch(): string | null;
  /** Asks the control plane once now (concurrent calls share one request). Never rejects. */
  refresh(): Promise<PolicyRefreshOutcome>;
  /** One refresh, then one every `refreshMs` (longer while the control plane does not answer). */
  start(): Promise<void>;
  close(): void;
}

interface InForce {
  /** Null for the launcher's snapshot. */
  epoch: string | null;
  version: number;
  /** `callersDigest` of the rules in force. */
  digest: string;
  decide: CallerDecision;
}

/** A well-formed answer's header (the rules are checked when they are compiled). */
interface Served {
  epoch: string;
  version: number;
  digest: string;
}

/** The epoch, version and digest of a control-plane answer, or the name of the first malformed part. */
function servedOf(answer: unknown): Served | string {
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) return 'not an object';
  const { epoch, version, digest } = answer as Partial<PolicyResponse>;
  if (typeof epoch !== 'string' || !POLICY_EPOCH_PATTERN.test(epoch)) return 'epoch';
  // The control plane serves versions from 1; 0 is the launcher's snapshot only.
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) return 'version';
  if (typeof digest !== 'string' || !POLICY_DIGEST_PATTERN.test(digest)) return 'digest';
  return { epoch, version, digest };
}

/**
 * A service's inbound policy, kept current from the control plane (issue 4: "policy updates from a
 * changed manifest reach every service without a restart"). The service asks `POST /v1/policy` over
 * mutual TLS with its SVID every few seconds, saying what it holds (epoch, version, digest: wire.ts).
 * A new policy is compiled in full first, checked against the answer's digest, and then swapped in
 * with one assignment, so each request is decided by exactly one policy (the one in force when its
 * check ran). What is new: an answer from another epoch, whatever its version (the control plane
 * restarted; when its version is lower, or the same for other rules, its policy history restarted,
 * e.g. a lost or restored policy.json, and its possibly narrower rules must win over the ones held:
 * logged as a warning); within the epoch held, a higher version, or the same version with another
 * digest. Within one epoch a lower version is refused (versions never go back); a malformed answer is
 * refused whole with a log line and the old policy keeps deciding; when the control plane is down the
 * last policy stays in force and polls back off up to POLICY_DEFAULTS.retryMaxMs.
 *
 * Metrics: `rampart_service_policy_version`, `rampart_service_policy_updates_total`,
 * `rampart_service_policy_refresh_failures_total{reason}` (reasons: POLICY_REFRESH_FAILURES),
 * `rampart_service_policy_epoch_changes_total{history}` (`continued`, or `restarted`).
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
  let inForce: InForce = {
    epoch: null,
    version: options.initial.version,
    digest: callersDigest(options.initial.callers),
    decide: initialDecide,
  };
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
  const epochChanges = new Counter({
    name: 'rampart_service_policy_epoch_changes_total',
    help: "Policies installed from another epoch than the one held (the control plane restarted), by history: continued (a higher version, or the same version and rules), restarted (a lower version, or the same with other rules: the control plane's policy history restarted, e.g. policy.json lost or restored).",
    labelNames: ['history'],
    registers: [options.registry],
  });
  for (const history of ['continued', 'restarted']) epochChanges.inc({ history }, 0);
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
    const held = inForce;
    let answer: unknown;
    try {
      answer = await request<PolicyResponse>(target, {
        method: 'POST',
        path: '/v1/policy',
        body: { epoch: held.epoch, version: held.version, digest: held.digest } satisfies PolicyRequest,
        cert: svid.certificatePem,
        key: svid.keyPem,
      });
    } catch (err) {
      const code = err instanceof RampartError ? err.code : 'unknown';
      return fail(code === CONTROL_API_ERRORS.unavailable ? 'unavailable' : 'refused', { code });
    }
    const served = servedOf(answer);
    if (typeof served === 'string') return fail('malformed', { detail: served });
    const { epoch, version, digest } = served;
    // Another refresh may have installed a policy meanwhile: compare with what is in force now.
    const current = inForce;
    const sameEpoch = epoch === current.epoch;
    if (sameEpoch && version === current.version && digest === current.digest) {
      if (failures > 0) logger.info({ epoch, version }, 'policy refresh works again');
      failures = 0;
      return 'unchanged';
    }
    if (sameEpoch && version < current.version) return fail('stale', { offered: version });
    const callers = (answer as PolicyResponse).callers;
    // No rules for a policy this service does not hold: nothing it could install.
    if (callers === undefined) return fail('malformed', { offered: version, detail: 'no callers' });
    let decide: CallerDecision;
    try {
      decide = compileCallerPolicy({ version, callers }, control.trustDomain);
    } catch (err) {
      return fail('malformed', { offered: version, detail: (err as RampartError).detail?.reason ?? 'unknown' });
    }
    // Checked after compiling: the rules are known to be well formed before they are hashed.
    if (callersDigest(callers) !== digest) return fail('malformed', { offered: version, detail: 'digest' });
    inForce = { epoch, version, digest, decide };
    versionGauge.set(version);
    updates.inc();
    failures = 0;
    const fields = {
      epoch,
      version,
      previousEpoch: current.epoch,
      previousVersion: current.version,
      callers: Object.keys(callers).length,
    };
    if (sameEpoch || current.epoch === null) {
      // Within the epoch, an equal version with other rules breaks the control plane's own rule.
      if (version === current.version && current.epoch !== null) {
        logger.warn(fields, 'inbound policy updated: same version, other rules');
      } else logger.info(fields, 'inbound policy updated');
    } else if (version > current.version || (version === current.version && digest === current.digest)) {
      epochChanges.inc({ history: 'continued' });
      logger.info(fields, 'inbound policy updated from a restarted control plane (new epoch)');
    } else {
      // A lower version, or the same one for other rules: the versions held mean nothing any more.
      epochChanges.inc({ history: 'restarted' });
      logger.warn(fields, "the control plane's policy history restarted (new epoch): its policy replaces the one held");
    }
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
    epoch() {
      return inForce.epoch;
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
