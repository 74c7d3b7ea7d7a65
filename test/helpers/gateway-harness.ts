import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parseManifest } from '../../src/config/load.ts';
import type { CorsPolicy, GatewayConfig, GatewayLimits, HttpMethod, Manifest, Route } from '../../src/config/model.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { createMemoryDecisionSink, type DecisionEvent } from '../../src/gateway/decision-sink.ts';
import { createGateway, type Gateway } from '../../src/gateway/gateway.ts';
import { createGatewayMetrics, type GatewayMetrics } from '../../src/gateway/metrics.ts';
import type { GatewayDeps } from '../../src/gateway/stage.ts';

/** Any existing file: the manifest's `run` entries must name one, and the gateway never runs them. */
export const RUN_FILE = fileURLToPath(import.meta.url);

/** The manifest settings the YAML schema may not carry yet, applied on top of a parsed manifest. */
export interface ManifestPatch {
  limits?: Partial<GatewayLimits>;
  tls?: GatewayConfig['tls'];
  redirectHttp?: GatewayConfig['redirectHttp'];
  trustedProxies?: readonly string[];
  /** CORS policies by route id. */
  cors?: Readonly<Record<string, CorsPolicy>>;
  /**
   * Routes added after validation: layouts the manifest's cross-checks refuse today (a catch-all that
   * overlaps other services' routes) but the gateway must still route safely if they ever exist.
   */
  addRoutes?: readonly {
    id: string;
    service: string;
    path: string;
    methods: readonly HttpMethod[];
    scopes?: string[];
  }[];
}

/** A copy of `manifest` with `patch` applied (the original is frozen and stays as it was). */
export function patchManifest(manifest: Manifest, patch: ManifestPatch): Manifest {
  const added = (patch.addRoutes ?? []).map(
    (r): Route => ({
      id: r.id,
      service: r.service,
      path: { source: r.path, segments: r.path.split('/').filter((s) => s !== '') },
      methods: r.methods,
      auth: r.scopes ? { kind: 'token', scopes: r.scopes, scopeMatch: 'all', roles: [] } : { kind: 'none' },
      rateLimit: null,
      where: { file: manifest.file, line: 0, column: 0 },
      cors: null,
    }),
  );
  const routes = [...manifest.routes, ...added].map((route) => ({
    ...route,
    cors: patch.cors?.[route.id] ?? route.cors,
  }));
  const services = Object.fromEntries(
    Object.entries(manifest.services).map(([name, service]) => [
      name,
      { ...service, routes: routes.filter((r) => r.service === name) },
    ]),
  );
  return {
    ...manifest,
    routes,
    services,
    gateway: {
      ...manifest.gateway,
      limits: { ...manifest.gateway.limits, ...patch.limits },
      tls: patch.tls ?? manifest.gateway.tls,
      redirectHttp: patch.redirectHttp === undefined ? manifest.gateway.redirectHttp : patch.redirectHttp,
      trustedProxies: patch.trustedProxies ?? manifest.gateway.trustedProxies,
    },
  };
}

/** Parses a test manifest (loopback, `tls: off`) and applies `patch`. */
export function testManifest(yaml: string, patch: ManifestPatch = {}): Manifest {
  return patchManifest(parseManifest(yaml, '/tmp/rampart-gateway-test/rampart.yaml'), patch);
}

export interface RunningGateway {
  readonly gateway: Gateway;
  readonly port: number;
  readonly decisions: DecisionEvent[];
  readonly metrics: GatewayMetrics;
  readonly deps: GatewayDeps;
  /** The current value of a denial counter. */
  denials(stage: string, reason: string): Promise<number>;
  close(): Promise<void>;
}

/** Builds the dependencies a gateway gets in production, with a silent logger and a memory decision sink. */
export function testDeps(
  manifest: Manifest,
  upstreams: Record<string, string>,
  options: { now?: () => number } = {},
): GatewayDeps {
  const registry = createMetrics('gateway-test');
  return {
    manifest,
    upstreams,
    logger: pino({ level: 'silent' }),
    registry,
    metrics: createGatewayMetrics(registry),
    decisions: createMemoryDecisionSink(),
    now: options.now ?? Date.now,
    verifiers: new Map(),
  };
}

/** Starts a real gateway on 127.0.0.1 (a free port) for `manifest`, proxying to `upstreams`. */
export async function startGateway(
  manifest: Manifest,
  upstreams: Record<string, string>,
  options: { now?: () => number } = {},
): Promise<RunningGateway> {
  const deps = testDeps(manifest, upstreams, options);
  const gateway = createGateway(deps);
  const port = await gateway.listen('127.0.0.1', 0);
  return {
    gateway,
    port,
    decisions: (deps.decisions as ReturnType<typeof createMemoryDecisionSink>).events,
    metrics: deps.metrics,
    deps,
    denials: async (stage, reason) => {
      const metric = await deps.metrics.denials.get();
      return metric.values.find((v) => v.labels.stage === stage && v.labels.reason === reason)?.value ?? 0;
    },
    close: () => gateway.close(200),
  };
}
