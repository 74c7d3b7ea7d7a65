/**
 * The Rampart gateway as `rampart start` runs it: a manifest in a project directory, the launcher's own
 * plan (RAMPART_RUNTIME with the service's upstream URL), the launcher's least-privilege command line
 * (permission model, read allow-list, sqlite preload) and environment, a stdin pipe it watches, its
 * own process group. Only the services are missing: the manifest's one service is the benchmark's
 * nginx upstream, which the gateway reaches on the port the launcher would have assigned.
 */
import { copyFileSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../../src/config/config-error.ts';
import { loadManifest } from '../../src/config/load.ts';
import type { Manifest } from '../../src/config/model.ts';
import { rampartPackageRoot, readableRoots } from '../../src/launcher/allow-list.ts';
import { childEnv } from '../../src/launcher/child-env.ts';
import { childCommand } from '../../src/launcher/command.ts';
import { ensurePrivateDir } from '../../src/launcher/data-dirs.ts';
import { planProcesses } from '../../src/launcher/plan.ts';
import { freePorts } from '../../src/launcher/ports.ts';
import { BENCH_AUDIENCE, BENCH_ISSUER, BENCH_SCOPE, type TlsFiles } from './credentials.ts';
import { UNREACHABLE_RATE } from './peers.ts';
import type { ProcessGroup, Started } from './processes.ts';

/** Route prefixes of the benchmark manifest. */
export const PLAIN_PATH = '/plain/orders';
export const FULL_PATH = '/full/orders';

export interface GatewayVariant {
  /** Directory name and label: `w1`, `w2-tls`, ... */
  name: string;
  /** `gateway.workers`; omitted from the manifest when undefined (the checkout's default). */
  workers?: number;
  tls?: TlsFiles;
  /** `gateway.limits.maxConnectionsPerClient`, for the many-connections memory run from one address. */
  maxConnectionsPerClient?: number;
  /** Extra Node flags before the entry file (`--cpu-prof`, ...). */
  nodeFlags?: readonly string[];
  /** Drop the permission model flags (profilers need to write outside the data directory). */
  withoutPermissions?: boolean;
  /**
   * Run the built JavaScript in `dist/` (as an installed package runs), not the TypeScript sources
   * (as a checkout runs): no type stripping in the gateway process. `dist/` must be built.
   */
  fromDist?: boolean;
}

export interface RunningGateway {
  readonly variant: GatewayVariant;
  readonly url: string;
  readonly process: Started;
  readonly adminUrl: string;
  /** Where its stderr goes (its JSON log goes to /dev/null: see {@link startGateway}). */
  readonly stderrFile: string;
}

/** A manifest the checkout refuses: the feature the variant needs is not there yet. */
export interface Unsupported {
  readonly unsupported: string;
}

/** The benchmark manifest: `/plain/**` without auth or limit, `/full/**` with the whole chain. */
export function benchManifest(variant: GatewayVariant, listenPort: number, jwksUri: string): string {
  const gateway = [
    'gateway:',
    `  listen: { host: 127.0.0.1, port: ${listenPort} }`,
    // Relative to the manifest: the files are copied into the project, the only place the launcher lets it read.
    variant.tls ? '  tls: { cert: tls.crt, key: tls.key }' : '  tls: off',
    '  rateLimit: { store: memory }',
  ];
  if (variant.workers !== undefined) gateway.push(`  workers: ${variant.workers}`);
  if (variant.maxConnectionsPerClient !== undefined) {
    gateway.push(`  limits: { maxConnectionsPerClient: ${variant.maxConnectionsPerClient} }`);
  }
  return [
    'version: 1',
    'trustDomain: bench.local',
    ...gateway,
    'identity:',
    `  external: { issuer: ${BENCH_ISSUER}, jwksUri: ${jwksUri} }`,
    `  audience: ${BENCH_AUDIENCE}`,
    'services:',
    '  bench:',
    '    run: service.ts',
    '    routes:',
    '      - { id: plain, path: /plain/**, methods: [GET], auth: none }',
    `      - id: full`,
    '        path: /full/**',
    '        methods: [GET]',
    `        auth: { scopes: [${BENCH_SCOPE}] }`,
    `        rateLimit: ${UNREACHABLE_RATE}/s per subject`,
    '',
  ].join('\n');
}

/**
 * Writes the project for `variant` under `root` (a directory of its own, with the manifest and a
 * placeholder service file) and loads the manifest with this checkout's loader. Returns the manifest,
 * or {@link Unsupported} when the loader refuses the variant's keys (`workers`, `limits`): the feature
 * has not landed in this checkout.
 */
export function writeProject(
  root: string,
  variant: GatewayVariant,
  listenPort: number,
  jwksUri: string,
): { manifest: Manifest; dir: string } | Unsupported {
  const dir = join(root, `rampart-${variant.name}`);
  ensurePrivateDir(dir);
  writeFileSync(join(dir, 'service.ts'), '// The service is the benchmark upstream (nginx); never run.\n');
  if (variant.tls) {
    copyFileSync(variant.tls.cert, join(dir, 'tls.crt'));
    copyFileSync(variant.tls.key, join(dir, 'tls.key'));
  }
  const manifestFile = join(dir, 'rampart.yaml');
  writeFileSync(manifestFile, benchManifest(variant, listenPort, jwksUri));
  try {
    return { manifest: loadManifest(manifestFile), dir };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { unsupported: err.issues.map((i) => `${i.path}: ${i.message}`).join('; ') };
  }
}

/**
 * Writes the project for `variant` and starts its gateway. Resolves once the admin listener says
 * ready, or with {@link Unsupported} (see {@link writeProject}).
 *
 * The gateway's stdout (its JSON access log, one line per request) goes to /dev/null: the gateway
 * still formats and writes every line, as it does in production, but no reader competes for the
 * machine's cores (under `rampart start` the launcher renders those lines; in a container, the runtime).
 */
export async function startGateway(
  processes: ProcessGroup,
  root: string,
  variant: GatewayVariant,
  upstreamPort: number,
  jwksUri: string,
): Promise<RunningGateway | Unsupported> {
  const [listenPort, adminPort] = (await freePorts(2)) as [number, number];
  const project = writeProject(root, variant, listenPort, jwksUri);
  if ('unsupported' in project) return project;
  const { manifest, dir } = project;

  const dataRoot = join(dir, '.rampart');
  const packageRoot = rampartPackageRoot();
  const plan = planProcesses(manifest, {
    ports: { admin: { control: 0, bench: 0, gateway: adminPort }, service: { bench: upstreamPort }, control: 0 },
    dataRoot,
    entries: {
      control: join(packageRoot, 'src/control/main.ts'),
      identity: join(packageRoot, 'src/identity/main.ts'),
      gateway: join(packageRoot, variant.fromDist ? 'dist/gateway/main.js' : 'src/gateway/main.ts'),
    },
  }).find((p) => p.name === 'gateway')!;
  ensurePrivateDir(dataRoot);
  ensurePrivateDir(plan.runtime.dataDir);
  const { args } = childCommand(plan, {
    roots: readableRoots(manifest.dir, packageRoot),
    dataRoot,
    fromSource: !variant.fromDist,
    // This module runs from the sources; a dist gateway gets dist's preload, as the built launcher gives it.
    ...(variant.fromDist ? { preload: pathToFileURL(join(packageRoot, 'dist/launcher/sqlite-preload.js')).href } : {}),
  });
  const entry = args.pop()!;
  const flags = variant.withoutPermissions
    ? args.filter((a) => a !== '--permission' && !a.startsWith('--allow-fs-'))
    : args;
  const stderrFile = join(dir, 'gateway.stderr');
  const started = processes.start(
    `gateway ${variant.name}`,
    process.execPath,
    [...flags, ...(variant.nodeFlags ?? []), entry],
    {
      cwd: plan.runtime.dataDir,
      env: childEnv(plan.runtime, plan.env, process.env),
      // stdin: a pipe this process holds open, as the launcher does (the gateway stops when it closes).
      stdio: ['pipe', openSync('/dev/null', 'w'), openSync(stderrFile, 'w')],
    },
  );

  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const deadline = Date.now() + 30_000;
  while ((await status(`${adminUrl}/readyz`)) !== 200) {
    if (started.child.exitCode !== null || started.child.signalCode !== null || Date.now() > deadline) {
      await started.stop();
      throw new Error(`gateway ${variant.name} did not become ready; stderr (${stderrFile}):\n${readTail(stderrFile)}`);
    }
    await delay(100);
  }
  const scheme = variant.tls ? 'https' : 'http';
  return { variant, url: `${scheme}://127.0.0.1:${listenPort}`, process: started, adminUrl, stderrFile };
}

function status(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get(url, { timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-4000);
  } catch {
    return '(unreadable)';
  }
}
