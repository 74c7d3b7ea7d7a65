/**
 * The real gateway process for tests: `src/gateway/main.ts` started exactly as the launcher starts it
 * (same Node arguments under the permission model, same environment with a `RAMPART_RUNTIME`), on a
 * manifest in a temporary project, with the upstream URLs the test chooses.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AUDIT_CLIENT_DEFAULTS } from '../../src/control/audit/client-defaults.ts';
import { type AuditEvent, parseAuditEntry } from '../../src/core/audit-event.ts';
import type { GatewayRuntime } from '../../src/core/runtime.ts';
import { rampartPackageRoot, readableRoots } from '../../src/launcher/allow-list.ts';
import { childEnv } from '../../src/launcher/child-env.ts';
import { childCommand } from '../../src/launcher/command.ts';
import type { PlannedProcess } from '../../src/launcher/plan.ts';
import { type CleanupContext, freePort, spawnTracked, type Tracked, waitForHttp } from './processes.ts';

export const REPO = resolve(import.meta.dirname, '../..');
export const GATEWAY_ENTRY = join(REPO, 'src', 'gateway', 'main.ts');

export interface GatewayProcess {
  readonly dir: string;
  readonly manifestFile: string;
  readonly dataDir: string;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly base: string;
  /** `http://127.0.0.1:<admin port>` */
  readonly admin: string;
  readonly child: Tracked;
  /** Replaces the manifest atomically (write to a temporary file, rename), as editors do. */
  writeManifest(text: string): void;
  /** `/metrics` of the admin listener. */
  metrics(): Promise<string>;
  /** Decision events (audit events) in the gateway's audit spool so far, oldest first. */
  decisions(): AuditEvent[];
  /** The audit spool's segment files. */
  spoolFiles(): string[];
}

export interface GatewayProcessOptions {
  /** The manifest text for a gateway on `port`; service `run` files may name `services/<name>.ts`. */
  manifest: (port: number) => string;
  upstreams: Record<string, string>;
  /** Milliseconds to wait for `/readyz`; `false` returns once the process is spawned (a test of a refusal). */
  readyTimeoutMs?: number | false;
  /** Runtime fields on top of the defaults: a control plane and a join token (mTLS, audit delivery). */
  runtime?: Pick<GatewayRuntime, 'control' | 'joinToken'>;
}

/** Starts the gateway process and waits until it is ready; it is stopped (and the project removed) when the test ends. */
export async function startGatewayProcess(t: CleanupContext, options: GatewayProcessOptions): Promise<GatewayProcess> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'rampart-gateway-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'package.json'), '{"name":"scratch","private":true,"type":"module"}\n');
  mkdirSync(join(dir, 'services'));
  const port = await freePort();
  const text = options.manifest(port);
  for (const [, name] of text.matchAll(/run: services\/([a-z0-9-]+)\.ts/g)) {
    writeFileSync(join(dir, 'services', `${name}.ts`), '');
  }
  const manifestFile = join(dir, 'rampart.yaml');
  writeFileSync(manifestFile, text);
  const dataRoot = join(dir, '.rampart');
  const dataDir = join(dataRoot, 'gateway');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  const runtime: GatewayRuntime = {
    kind: 'gateway',
    name: 'gateway',
    dataDir,
    adminPort: await freePort(),
    manifestFile,
    upstreams: options.upstreams,
    ...options.runtime,
  };
  const plan: PlannedProcess = { name: 'gateway', kind: 'gateway', entry: GATEWAY_ENTRY, runtime, env: {} };
  const { args } = childCommand(plan, {
    roots: readableRoots(dir, rampartPackageRoot()),
    dataRoot,
    fromSource: true,
  });
  const child = spawnTracked(t, process.execPath, args, {
    cwd: dataDir,
    env: childEnv(runtime, {}, process.env),
  });
  const admin = `http://127.0.0.1:${runtime.adminPort}`;
  if (options.readyTimeoutMs !== false) {
    try {
      await waitForHttp(`${admin}/readyz`, (status) => status === 200, options.readyTimeoutMs ?? 30_000);
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\n--- stdout ---\n${child.stdout()}\n--- stderr ---\n${child.stderr()}`,
      );
    }
  }
  return {
    dir,
    manifestFile,
    dataDir,
    port,
    base: `http://127.0.0.1:${port}`,
    admin,
    child,
    writeManifest(next) {
      const temporary = `${manifestFile}.tmp`;
      writeFileSync(temporary, next);
      renameSync(temporary, manifestFile);
    },
    metrics: async () => (await fetch(`${admin}/metrics`)).text(),
    decisions: () =>
      spoolFiles(dataDir).flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((line) => parseAuditEntry(Buffer.from(line))),
      ),
    spoolFiles: () => spoolFiles(dataDir),
  };
}

/** The segment files of the audit spool in `dataDir`, oldest first (control/audit/spool.ts). */
function spoolFiles(dataDir: string): string[] {
  const dir = join(dataDir, AUDIT_CLIENT_DEFAULTS.spoolDirectory);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => name.endsWith('.spool'))
    .sort()
    .map((name) => join(dir, name));
}

/**
 * The sum of a metric's samples in Prometheus text whose labels include every pair of `labels`
 * (`name` matches the sample name exactly: pass `x_bucket`, `x_count`... for histograms).
 */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...(match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) sum += Number(match[4]);
  }
  return sum;
}

/** Sample label sets of a metric (for per-label assertions). */
export function metricSamples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const labels = Object.fromEntries(
      [...(match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]),
    );
    out.push({ labels, value: Number(match[4]) });
  }
  return out;
}
