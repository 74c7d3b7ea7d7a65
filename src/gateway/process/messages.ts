import type { Registry } from 'prom-client';
import type { Manifest } from '../../config/model.ts';
import type { EdgeCertificatePem, GatewayRuntime, WorkloadSvid } from '../../core/runtime.ts';
import type { SharedTableTransferable } from '../rate-limit/shared-table.ts';

/**
 * The protocol between the gateway's main thread and its worker threads (structured clone over the
 * worker's port). The main thread owns the configuration, the audit client and the admin listener; a
 * worker owns one public listener (SO_REUSEPORT) and everything a request touches.
 */

/** What a worker starts with (`workerData`). */
export interface WorkerData {
  /** 0-based, stable across restarts of the same slot: the `worker` metric label. */
  readonly index: number;
  readonly runtime: GatewayRuntime;
  /** The last good manifest, validated by the main thread. */
  readonly manifest: Manifest;
  /** Its generation (1 at start, +1 per applied reload). */
  readonly generation: number;
  /** Listen with SO_REUSEPORT (several workers share the port). */
  readonly reusePort: boolean;
  /** The gateway-wide rate-limit table (shared memory), attached by every worker. */
  readonly rateLimitTable: SharedTableTransferable;
}

export type ToWorker =
  | { type: 'reconfigure'; generation: number; manifest: Manifest }
  /**
   * The current SVID and edge certificate, sent once a worker listens: a renewal broadcast between the
   * worker's creation (its `workerData`) and the moment it opened its broadcast channels never reached
   * it. The worker installs whichever differs from what it holds.
   */
  | { type: 'credentials'; workloadSvid?: WorkloadSvid; edgeCertificate?: EdgeCertificatePem }
  | { type: 'metrics'; id: number }
  | { type: 'drain'; graceMs: number };

export type FromWorker =
  | { type: 'listening'; port: number }
  | { type: 'reconfigured'; generation: number; result: ReconfigureOutcome }
  | { type: 'metrics'; id: number; metrics: WorkerMetrics }
  | { type: 'decisions'; lines: string; count: number }
  | { type: 'drained' };

/** A worker's registry as `getMetricsAsJSON` returns it, for `AggregatorRegistry.aggregate`. */
export type WorkerMetrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** A worker's answer to a new configuration. */
export interface ReconfigureOutcome {
  /** Why the worker kept its configuration; null when it swapped. */
  readonly error: string | null;
  /** Dotted manifest paths that changed but apply only after a restart (gateway.ts `reconfigure`). */
  readonly restartRequired: readonly string[];
}
