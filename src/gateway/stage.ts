import type { Registry } from 'prom-client';
import type { Manifest } from '../config/model.ts';
import type { Logger } from '../core/logger.ts';
import type { RequestContext, ResponseHook } from './context.ts';
import type { DecisionSink } from './decision-sink.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { RateLimitBackend } from './rate-limit/store.ts';
import type { VerifierRegistry } from './stages/authenticate.ts';

/** What every stage factory receives. Built once per configuration. */
export interface GatewayDeps {
  readonly manifest: Manifest;
  /** Loopback base URL of every service, by name. */
  readonly upstreams: Readonly<Record<string, string>>;
  readonly logger: Logger;
  /**
   * The access log (one line per request). Its fields are fixed by the gateway and never hold headers or
   * credentials, so it may be a logger without redaction, which costs ~10 % of a request's CPU otherwise.
   * Defaults to `logger`.
   */
  readonly accessLog?: Logger;
  /** Token verifiers kept across reconfigurations (per worker); without it each generation starts cold. */
  readonly verifiers?: VerifierRegistry;
  readonly registry: Registry;
  readonly metrics: GatewayMetrics;
  readonly decisions: DecisionSink;
  /** Milliseconds since the epoch; injectable for tests of time-based stages. */
  readonly now: () => number;
  /**
   * Where rate limits live (rate-limit/backend.ts): the gateway's shared table or Redis, created once
   * and kept across reloads and worker threads, closed by its creator. Absent: each rate-limit stage
   * makes a private table (exact for one thread only; fine for in-process gateways in tests).
   */
  readonly rateLimit?: RateLimitBackend;
}

/**
 * One step of the gateway pipeline. `request` runs in pipeline order and either returns (continue), or
 * throws a denial (see deny.ts). `respond` runs in reverse order on the way out, for every response
 * that leaves after this stage's `request` ran (proxied or generated). The terminal stage writes the
 * response itself.
 */
export interface Stage {
  readonly name: string;
  readonly request: (ctx: RequestContext) => void | Promise<void>;
  readonly respond?: ResponseHook;
  /** Releases what the stage holds (pools, timers). */
  readonly close?: () => Promise<void>;
}

export interface StageDefinition {
  readonly name: string;
  /** Why the stage sits where it does: printed by `rampart check --verbose`, and the docs' source. */
  readonly purpose: string;
  readonly create: (deps: GatewayDeps) => Stage;
  /** Exactly one stage is terminal, and it is the last one. */
  readonly terminal?: boolean;
}
