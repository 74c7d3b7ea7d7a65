import { join } from 'node:path';
import type { Manifest } from '../config/model.ts';
import { inboundPolicy } from '../control/policy/compile.ts';
import { RampartError } from '../core/errors.ts';
import type { ControlRuntime, GatewayRuntime, IdentityRuntime, Runtime, ServiceRuntime } from '../core/runtime.ts';

/** The components the launcher starts besides the services; their names are reserved. */
export const COMPONENTS = ['control', 'identity', 'gateway'] as const;
export type Component = (typeof COMPONENTS)[number];

/** One process the launcher runs: what to start and the runtime it is given. */
export interface PlannedProcess {
  name: string;
  kind: Runtime['kind'];
  /** Absolute path of the file Node runs. */
  entry: string;
  runtime: Runtime;
  /** The manifest's `env` entries (services only). */
  env: Readonly<Record<string, string>>;
}

/** Ports chosen by the launcher, kept for the life of the launcher so restarts find the same ones. */
export interface PortAssignment {
  /** Admin listener of every process, by process name. */
  admin: Readonly<Record<string, number>>;
  /** API port of every service, by service name. */
  service: Readonly<Record<string, number>>;
  /** The control plane's own port. */
  control: number;
}

export interface PlanOptions {
  ports: PortAssignment;
  /** `<manifest dir>/.rampart`. */
  dataRoot: string;
  /** Entry files of the components. */
  entries: Readonly<Record<Component, string>>;
  /** The manifest's path as processes should open it (its real path). Default: `manifest.file`. */
  manifestFile?: string;
  /**
   * The launcher's bearer credential for minting join tokens; only the control plane's runtime holds
   * it. Absent (tests of other parts): empty, and the control plane refuses to start its API.
   */
  launcherCredential?: string;
  /** Services serve mutual TLS: peers' and upstreams' URLs are https. Default false. */
  mtls?: boolean;
  /** Overrides of the CA's lifetimes, passed to the control plane (tests). */
  ca?: ControlRuntime['ca'];
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/i;

/**
 * Process names in start order: the control plane, the identity provider (when built in), every
 * service, and the gateway last, so the front door opens only when what is behind it is ready.
 * Throws LAUNCH_ERR_NAME for a service name that is not a safe directory name or that a component uses.
 */
export function startOrder(manifest: Manifest): string[] {
  for (const name of Object.keys(manifest.services)) {
    if (!NAME.test(name) || (COMPONENTS as readonly string[]).includes(name) || name === 'rampart') {
      throw new RampartError(
        'LAUNCH_ERR_NAME',
        `services.${name}: a service needs its own name (letters, digits, - and _; not control, identity, gateway or rampart)`,
      );
    }
  }
  return [
    'control',
    ...(manifest.identity.mode === 'builtin' ? ['identity'] : []),
    ...Object.keys(manifest.services),
    'gateway',
  ];
}

/** The token settings services verify end-user tokens with. */
export function identitySettings(manifest: Manifest): ServiceRuntime['identity'] {
  const identity = manifest.identity;
  if (identity.mode === 'external') {
    return { issuer: identity.issuer, audience: identity.audience, jwksUri: identity.jwksUri };
  }
  const issuer = identity.issuer || `http://127.0.0.1:${identity.port}`;
  return { issuer, audience: identity.audience, jwksUri: `${issuer.replace(/\/+$/, '')}/jwks` };
}

/** The control plane API's loopback URL. */
export function controlUrl(port: number): string {
  return `https://127.0.0.1:${port}`;
}

/** Loopback base URL of a service's API (https when services serve mutual TLS). */
export function serviceUrl(port: number, mtls = false): string {
  return `${mtls ? 'https' : 'http'}://127.0.0.1:${port}`;
}

/** Builds every process's runtime, in start order. Pure: ports and paths are given. */
export function planProcesses(manifest: Manifest, options: PlanOptions): PlannedProcess[] {
  const { ports, dataRoot, entries } = options;
  const base = (name: string) => {
    const adminPort = ports.admin[name];
    if (adminPort === undefined) throw new RangeError(`no admin port for ${name}`);
    return { name, dataDir: join(dataRoot, name), adminPort, manifestFile: options.manifestFile ?? manifest.file };
  };
  const servicePort = (name: string) => {
    const port = ports.service[name];
    if (port === undefined) throw new RangeError(`no port for service ${name}`);
    return port;
  };
  const identity = identitySettings(manifest);
  const mtls = options.mtls ?? false;

  return startOrder(manifest).map((name): PlannedProcess => {
    if (name === 'control') {
      const runtime: ControlRuntime = {
        kind: 'control',
        ...base(name),
        port: ports.control,
        launcherCredential: options.launcherCredential ?? '',
        trustDomain: manifest.trustDomain,
        store: manifest.control.store,
        ...(options.ca ? { ca: options.ca } : {}),
      };
      return { name, kind: 'control', entry: entries.control, runtime, env: {} };
    }
    if (name === 'identity') {
      const port = manifest.identity.mode === 'builtin' ? manifest.identity.port : 0;
      const runtime: IdentityRuntime = { kind: 'identity', ...base(name), port };
      return { name, kind: 'identity', entry: entries.identity, runtime, env: {} };
    }
    if (name === 'gateway') {
      const upstreams: Record<string, string> = {};
      for (const service of Object.values(manifest.services)) {
        if (service.routes.length > 0) upstreams[service.name] = serviceUrl(servicePort(service.name), mtls);
      }
      const runtime: GatewayRuntime = { kind: 'gateway', ...base(name), upstreams };
      return { name, kind: 'gateway', entry: entries.gateway, runtime, env: {} };
    }
    const service = manifest.services[name]!;
    const peers: Record<string, string> = {};
    for (const call of service.calls) peers[call.service] = serviceUrl(servicePort(call.service), mtls);
    const runtime: ServiceRuntime = {
      kind: 'service',
      ...base(name),
      port: servicePort(name),
      identity,
      peers,
      ...(mtls ? { policy: inboundPolicy(manifest, name) } : {}),
    };
    return { name, kind: 'service', entry: service.run, runtime, env: service.env };
  });
}
