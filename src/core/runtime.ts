import { RampartError } from './errors.ts';

/**
 * The contract between the launcher and the processes it starts. The launcher passes exactly one
 * variable, `RAMPART_RUNTIME`, holding this JSON; a process gets only what it needs (least privilege:
 * a service learns its own ports and data directory, never another's).
 */
export interface RuntimeBase {
  /** Name shown in logs: `gateway`, `control`, `identity`, or the service name. */
  name: string;
  /** Absolute path of the process's own writable data directory. */
  dataDir: string;
  /** Loopback port of the admin listener (`/healthz`, `/readyz`, `/metrics`). */
  adminPort: number;
  /** Absolute path of the manifest, for components that enforce part of it. */
  manifestFile: string;
}

/**
 * How a workload reaches the control plane for its X509-SVID (issue 4 "Attestation"): the API's
 * loopback URL, the trust bundle that verifies the control plane's own server certificate (bootstrap
 * trust; refreshed from the API afterwards) and the trust domain every SPIFFE ID must belong to.
 */
export interface ControlEndpoint {
  /** `https://127.0.0.1:<port>`. */
  url: string;
  /** The CA certificates (concatenated PEM) at the time the process was started. */
  bundle: string;
  trustDomain: string;
}

/** What a workload (a service or the gateway) gets to obtain its first SVID. */
export interface WorkloadIdentityRuntime {
  /** Absent when the process was started without a control plane (unit tests of other parts). */
  control?: ControlEndpoint;
  /** Single-use join token minted for this process alone (TTL 10 min); spent on the first SVID. */
  joinToken?: string;
}

/** Methods and path patterns (canonical, core/path-pattern.ts syntax) one caller may use. */
export interface CallerRule {
  methods: string[];
  paths: string[];
}

/**
 * Who may call a service (deny by default), from the manifest: the gateway for the service's routes,
 * and every service whose `calls` names it, keyed by the caller's SPIFFE ID.
 */
export interface InboundPolicy {
  /**
   * The control plane's policy version (control/policy/policy-store.ts): one number for the system,
   * increased by every change of the policy's content, never decreasing within one epoch of the
   * control plane's policy history. The launcher's snapshot is version 0 of no epoch
   * (control/policy/compile.ts `LAUNCH_POLICY_VERSION`); a service replaces its policy live with what
   * the control plane serves: a higher version, or any version of another epoch (sdk/policy-source.ts).
   */
  version: number;
  callers: Record<string, CallerRule[]>;
}

export interface ServiceRuntime extends RuntimeBase, WorkloadIdentityRuntime {
  kind: 'service';
  /** Loopback port the service serves its API on. */
  port: number;
  /** Token verification settings for end-user tokens forwarded by the gateway. */
  identity: { issuer: string; audience: string; jwksUri: string | null };
  /** Loopback base URLs of the services this one may call (from the manifest's `calls`). */
  peers: Record<string, string>;
  /**
   * Who may call this service when it started; enforced on every request when the service serves
   * mTLS, and replaced by newer versions from the control plane while it runs.
   */
  policy?: InboundPolicy;
}

export interface GatewayRuntime extends RuntimeBase, WorkloadIdentityRuntime {
  kind: 'gateway';
  /** Loopback base URL of every service, by name. */
  upstreams: Record<string, string>;
  /**
   * Set by the gateway's main thread for its worker threads, never by the launcher: the SVID the
   * workers connect upstream with (renewals arrive on the {@link GATEWAY_SVID_CHANNEL} channel).
   */
  workloadSvid?: WorkloadSvid;
  /**
   * Set by the gateway's main thread for its worker threads with `tls: auto`: the edge certificate
   * from the local CA (renewals arrive on the {@link GATEWAY_EDGE_CERTIFICATE_CHANNEL} channel).
   */
  edgeCertificate?: EdgeCertificatePem;
}

/** The edge certificate as the gateway's threads share it (PEM). The key stays inside the gateway process. */
export interface EdgeCertificatePem {
  certPem: string;
  keyPem: string;
}

/** BroadcastChannel name on which the gateway's main thread sends renewed edge certificates to its workers. */
export const GATEWAY_EDGE_CERTIFICATE_CHANNEL = 'rampart:gateway-edge-certificate';

/** An SVID as the gateway's threads share it (PEM). The key stays inside the gateway process. */
export interface WorkloadSvid {
  keyPem: string;
  certificatePem: string;
  bundlePem: string;
  trustDomain: string;
}

/** BroadcastChannel name on which the gateway's main thread sends renewed SVIDs to its workers. */
export const GATEWAY_SVID_CHANNEL = 'rampart:gateway-svid';

export interface ControlRuntime extends RuntimeBase {
  kind: 'control';
  /** Loopback port of the control plane's HTTPS API (join tokens, SVIDs, bundle). */
  port: number;
  /**
   * Bearer credential the launcher, and only the launcher, uses to mint join tokens. Random per
   * launcher start; no other process's runtime carries it.
   */
  launcherCredential: string;
  /** The manifest's trust domain: the CA's, and every SPIFFE ID's. */
  trustDomain: string;
  /**
   * Where the audit log and the secrets live (manifest `control.store`): SQLite files in `dataDir`, or
   * a PostgreSQL database (its URL may hold a password: never log it). Absent: SQLite.
   */
  store?: { kind: 'sqlite' } | { kind: 'postgres'; url: string };
  /**
   * Overrides of the CA's lifetimes (CA_DEFAULTS), for tests that watch renewals happen (the
   * Launcher's `ca` option); absent in `rampart start`.
   */
  ca?: { svidTtlMs?: number; edgeCertificateTtlMs?: number; clockSkewMs?: number; caLifetimeMs?: number };
}

/** The identity provider: its SVID is its client certificate to the control plane (audit delivery). */
export interface IdentityRuntime extends RuntimeBase, WorkloadIdentityRuntime {
  kind: 'identity';
  /** The issuer's public port on loopback. */
  port: number;
}

/** The control plane and the identity provider. */
export type ComponentRuntime = ControlRuntime | IdentityRuntime;

export type Runtime = ServiceRuntime | GatewayRuntime | ComponentRuntime;

export const RUNTIME_ENV = 'RAMPART_RUNTIME';

/**
 * Reads this process's runtime from the environment. Fails with CORE_ERR_RUNTIME when the process was
 * not started by the launcher (or a test that plays its part) or the kind does not match.
 */
export function readRuntime<K extends Runtime['kind']>(
  kind: K,
  env: NodeJS.ProcessEnv = process.env,
): Extract<Runtime, { kind: K }> {
  const raw = env[RUNTIME_ENV];
  if (!raw) {
    throw new RampartError('CORE_ERR_RUNTIME', `${RUNTIME_ENV} is not set: start this process with \`rampart start\``);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (cause) {
    throw new RampartError('CORE_ERR_RUNTIME', `${RUNTIME_ENV} is not valid JSON`, { cause });
  }
  if (typeof parsed !== 'object' || parsed === null || (parsed as { kind?: unknown }).kind !== kind) {
    throw new RampartError('CORE_ERR_RUNTIME', `${RUNTIME_ENV} does not describe a ${kind} process`);
  }
  return parsed as Extract<Runtime, { kind: K }>;
}
