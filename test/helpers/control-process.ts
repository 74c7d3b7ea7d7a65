import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ControlRuntime } from '../../src/core/runtime.ts';
import { rampartPackageRoot, readableRoots } from '../../src/launcher/allow-list.ts';
import { childEnv } from '../../src/launcher/child-env.ts';
import { childCommand } from '../../src/launcher/command.ts';
import type { PlannedProcess } from '../../src/launcher/plan.ts';
import { type CleanupContext, freePort } from './processes.ts';

const ENTRY = join(import.meta.dirname, '../../src/control/main.ts');

/** The one service of the project's manifest (an event's `component` must be its caller's own name). */
export const CONTROL_PROJECT_SERVICE = 'orders';

const MANIFEST = `
trustDomain: shop.local
gateway:
  listen: { host: 127.0.0.1, port: 8080 }
  tls: off
identity:
  external: { issuer: "https://idp.example.com", jwksUri: "http://127.0.0.1:1/jwks" }
  audience: https://api.shop.local
services:
  ${CONTROL_PROJECT_SERVICE}:
    run: services/${CONTROL_PROJECT_SERVICE}.ts
    routes:
      - { id: orders-list, path: /orders/**, methods: [GET], auth: { scopes: [orders] } }
`;

/** A project laid out as `rampart start` lays it out, for running the real control plane process. */
export interface ControlProject {
  dir: string;
  dataDir: string;
  runtime: ControlRuntime;
  /** The control plane's command line, under the permission model as the launcher runs it. */
  args: string[];
  /** Its environment with `kek` (base64) in RAMPART_KEK; `runtime` defaults to the project's. */
  env(kek: string, runtime?: ControlRuntime): NodeJS.ProcessEnv;
}

/** Makes the project in a temporary directory (removed after `t`), with free ports for the control plane. */
export async function controlProject(t: CleanupContext, prefix: string): Promise<ControlProject> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'package.json'), '{"name":"scratch","private":true,"type":"module"}\n');
  mkdirSync(join(dir, 'services'));
  writeFileSync(join(dir, 'services', `${CONTROL_PROJECT_SERVICE}.ts`), '');
  const manifestFile = join(dir, 'rampart.yaml');
  writeFileSync(manifestFile, MANIFEST);
  const dataRoot = join(dir, '.rampart');
  const dataDir = join(dataRoot, 'control');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const runtime: ControlRuntime = {
    kind: 'control',
    name: 'control',
    dataDir,
    adminPort: await freePort(),
    manifestFile,
    port: await freePort(),
    launcherCredential: randomBytes(32).toString('base64url'),
    trustDomain: 'shop.local',
  };
  const plan: PlannedProcess = { name: 'control', kind: 'control', entry: ENTRY, runtime, env: {} };
  const { args } = childCommand(plan, { roots: readableRoots(dir, rampartPackageRoot()), dataRoot, fromSource: true });
  return {
    dir,
    dataDir,
    runtime,
    args,
    env: (kek, r = runtime) => childEnv(r, {}, process.env, { RAMPART_KEK: kek }),
  };
}
