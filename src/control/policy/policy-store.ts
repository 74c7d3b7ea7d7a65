import { join } from 'node:path';
import { loadManifest } from '../../config/load.ts';
import type { Manifest } from '../../config/model.ts';
import { manifestIssueFields } from '../../config/watch-manifest.ts';
import type { Logger } from '../../core/logger.ts';
import { Counter, Gauge, type Registry } from '../../core/metrics.ts';
import { type CallerRules, compileSystemPolicy, policyDigest } from './compile.ts';
import { callersDigest, newPolicyEpoch } from './digest.ts';
import { POLICY_STATE_FILE, type PolicyState, readPolicyState, writePolicyState } from './state-file.ts';

export interface PolicyStoreOptions {
  /** The manifest file (the control plane runtime's `manifestFile`). */
  manifestFile: string;
  /** The control plane's data directory, where the version is persisted. */
  dataDir: string;
  /** The running trust domain (the CA's): a manifest that changes it is refused until a restart. */
  trustDomain: string;
  logger: Logger;
  registry: Registry;
  /** Default: `loadManifest` (full validation, every issue reported). */
  load?: (file: string) => Manifest;
}

/** Digest of the empty policy (nobody may call), served for a service the manifest does not name. */
const NOBODY_DIGEST = callersDigest({});

/** Outcome of one reload. */
export type PolicyReloadResult = 'updated' | 'unchanged' | 'error';

/** One service's inbound policy at the system's policy version, in this run's epoch. */
export interface ServicePolicy {
  /** The epoch of the policy history this version belongs to (see {@link PolicyStore}). */
  epoch: string;
  version: number;
  /** `callersDigest(callers)`: what a service holding exactly these rules reports. */
  digest: string;
  callers: CallerRules;
}

/**
 * The system's versioned inbound policy, kept by the control plane (issue 4: "policy updates from a
 * changed manifest reach every service without a restart"). It is compiled from the manifest
 * (compile.ts, the launcher's definition too), reloaded on SIGHUP or a change of the file (debounced),
 * and validated in full by `loadManifest`: a manifest with issues is refused, every issue logged, and
 * the last good policy keeps being served.
 *
 * **Versions.** One number for the whole system, starting at 1, increased by one whenever the policy's
 * canonical content changes (policyDigest) and never otherwise: an edit to rate limits, `env` or
 * comments is not a new version. The version and the policy are written durably to `policy.json` in
 * the data directory before they are served, so after a restart the same policy keeps its version and
 * a different one gets the next: versions never go backwards and never name two policies. The
 * persisted policy is also the last good one when the manifest is invalid at start.
 *
 * **Epochs.** A version number alone cannot tell a service that the history it came from was lost:
 * with `policy.json` wiped, restored from an old backup, or a new control plane for the same system,
 * versions start again (at 1, or at the backup's number) for possibly narrower rules, and a service
 * holding a higher or equal version would keep its wider rules forever. So each run of the store
 * names its history with a random epoch (digest.ts `newPolicyEpoch`), new at every start and served
 * with every answer; a service that holds another epoch takes the answer whatever its version, and
 * only within one epoch do versions never go back. The epoch is deliberately not persisted: the
 * store cannot know that the `policy.json` it reads is the last one it wrote (a restored backup is a
 * valid file with its old epoch and an older version), and a restart with an intact file costs each
 * service one reinstall of identical rules. State files carry no epoch, so none is ever read back.
 *
 * Metrics: `rampart_control_policy_version`, `rampart_control_policy_reloads_total{result}`,
 * `rampart_control_policy_last_reload_successful`.
 */
export class PolicyStore {
  readonly #options: PolicyStoreOptions;
  readonly #load: (file: string) => Manifest;
  readonly #stateFile: string;
  readonly #epoch = newPolicyEpoch();
  #state: PolicyState | null;
  /** Per-service digests of `#state`, computed on first use; cleared when the state changes. */
  #digests = new Map<string, string>();
  readonly #reloads: Counter<'result'>;
  readonly #version: Gauge;
  readonly #lastSuccessful: Gauge;

  /**
   * Reads the persisted state (POLICY_ERR_STATE when it is corrupt), then loads the manifest once:
   * a new policy gets the next version and is persisted before the constructor returns (a write
   * failure throws: the control plane must not serve a version it could serve again for other rules).
   */
  constructor(options: PolicyStoreOptions) {
    this.#options = options;
    this.#load = options.load ?? ((file) => loadManifest(file));
    this.#stateFile = join(options.dataDir, POLICY_STATE_FILE);
    this.#state = readPolicyState(this.#stateFile);
    const registers = [options.registry];
    this.#reloads = new Counter({
      name: 'rampart_control_policy_reloads_total',
      help: 'Manifest reloads for the policy, by result: updated (new version), unchanged, error (kept the last good one).',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['updated', 'unchanged', 'error'] as const) this.#reloads.inc({ result }, 0);
    this.#version = new Gauge({
      name: 'rampart_control_policy_version',
      help: 'Version of the policy served to services (0: none loaded yet).',
      registers,
    });
    this.#lastSuccessful = new Gauge({
      name: 'rampart_control_policy_last_reload_successful',
      help: '1 when the last manifest load succeeded, 0 when it was refused and the last good policy is served.',
      registers,
    });
    this.#version.set(this.#state?.version ?? 0);
    this.#lastSuccessful.set(1);
    this.#reloadOnce('start', true);
    options.logger.info(
      { epoch: this.#epoch, version: this.#state?.version ?? null },
      'policy epoch started: services take this policy whatever version they hold',
    );
  }

  /** This run's epoch: new at every start, never persisted (see the class comment). */
  get epoch(): string {
    return this.#epoch;
  }

  /** The policy served now with its version, or null before any manifest was valid. */
  get current(): Readonly<PolicyState> | null {
    return this.#state;
  }

  /**
   * `service`'s inbound policy at the current version; a service the manifest does not (or no longer)
   * names gets an empty policy: nobody may call it. Null when no policy is loaded.
   */
  policyOf(service: string): ServicePolicy | null {
    const state = this.#state;
    if (!state) return null;
    const callers = Object.hasOwn(state.services, service) ? state.services[service] : undefined;
    if (!callers) return { epoch: this.#epoch, version: state.version, digest: NOBODY_DIGEST, callers: {} };
    // Cached per state: the map holds at most the manifest's services.
    let digest = this.#digests.get(service);
    if (digest === undefined) {
      digest = callersDigest(callers);
      this.#digests.set(service, digest);
    }
    return { epoch: this.#epoch, version: state.version, digest, callers };
  }

  /** Loads the manifest now. Synchronous: reloads never interleave. */
  reload(trigger: 'signal' | 'file' | 'manual' = 'manual'): PolicyReloadResult {
    return this.#reloadOnce(trigger, false);
  }

  #reloadOnce(trigger: string, starting: boolean): PolicyReloadResult {
    const { logger, manifestFile } = this.#options;
    let manifest: Manifest;
    try {
      manifest = this.#load(manifestFile);
    } catch (err) {
      this.#refused();
      const kept = { trigger, keptVersion: this.#state?.version ?? null };
      const issues = manifestIssueFields(err, manifestFile);
      if (issues) {
        logger.error({ ...kept, ...issues }, 'manifest refused: keeping the last good policy');
      } else {
        logger.error({ ...kept, err }, 'manifest load failed: keeping the last good policy');
      }
      return 'error';
    }
    if (manifest.trustDomain !== this.#options.trustDomain) {
      this.#refused();
      logger.error(
        { trigger, trustDomain: manifest.trustDomain, running: this.#options.trustDomain },
        'the manifest changes the trust domain, which takes a restart: keeping the last good policy',
      );
      return 'error';
    }
    const policy = compileSystemPolicy(manifest);
    const digest = policyDigest(policy);
    const previous = this.#state;
    if (previous?.digest === digest) {
      this.#reloads.inc({ result: 'unchanged' });
      this.#lastSuccessful.set(1);
      if (!starting) logger.info({ trigger, version: previous.version }, 'manifest reloaded: policy unchanged');
      return 'unchanged';
    }
    const next: PolicyState = { version: (previous?.version ?? 0) + 1, digest, services: policy.services };
    try {
      writePolicyState(this.#stateFile, next);
    } catch (err) {
      // At start there is nothing safe to serve under a version nobody persisted: the caller fails.
      if (starting) throw err;
      this.#refused();
      logger.error(
        { trigger, err, keptVersion: previous?.version ?? null },
        'policy not persisted: keeping the last good policy',
      );
      return 'error';
    }
    this.#state = next;
    this.#digests = new Map();
    this.#version.set(next.version);
    this.#reloads.inc({ result: 'updated' });
    this.#lastSuccessful.set(1);
    logger.info(
      {
        trigger,
        epoch: this.#epoch,
        version: next.version,
        previousVersion: previous?.version ?? null,
        digest: digest.slice(0, 16),
      },
      'policy updated',
    );
    return 'updated';
  }

  #refused(): void {
    this.#reloads.inc({ result: 'error' });
    this.#lastSuccessful.set(0);
  }
}
