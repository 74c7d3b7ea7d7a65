/**
 * Scratch projects for launcher tests: a temporary directory laid out like a user's project (a
 * package.json and `node_modules/rampart` linking to this checkout), and hand-built manifests, so the
 * launcher is tested without depending on the manifest loader.
 */

import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULTS } from '../../src/config/defaults.ts';
import type { HttpMethod, Manifest, Route, Service } from '../../src/config/model.ts';
import type { CleanupContext } from '../helpers/processes.ts';

export const REPO = resolve(import.meta.dirname, '../..');
export const FIXTURES = join(import.meta.dirname, 'fixtures');
/** The stand-in process (fixtures/service.ts). */
export const FIXTURE_SERVICE = join(FIXTURES, 'service.ts');
/** Components played by the stand-in. */
export const FIXTURE_ENTRIES = { control: FIXTURE_SERVICE, identity: FIXTURE_SERVICE, gateway: FIXTURE_SERVICE };

/** A temporary project directory (real path), removed when the test ends. */
export function makeProject(t: CleanupContext): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'rampart-launcher-')));
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: 'scratch', private: true, type: 'module' })}\n`);
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(REPO, join(dir, 'node_modules', 'rampart'), 'dir');
  mkdirSync(join(dir, 'services'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface ServiceSketch {
  /** Entry file; default the stand-in. */
  run?: string;
  env?: Record<string, string>;
  /** Public GET routes (paths) the gateway forwards to it. */
  routes?: string[];
  /** Services it calls. */
  calls?: string[];
}

export interface ManifestSketch {
  gatewayPort?: number;
  identityPort?: number;
  identity?: 'builtin' | 'external';
}

/** A normalized manifest as `loadManifest` would produce it, for `<dir>/rampart.yaml`. */
export function handManifest(
  dir: string,
  services: Record<string, ServiceSketch>,
  sketch: ManifestSketch = {},
): Manifest {
  const file = join(dir, 'rampart.yaml');
  const where = { file, line: 1, column: 1 };
  const routes: Route[] = [];
  const built: Record<string, Service> = {};
  for (const [name, s] of Object.entries(services)) {
    const own: Route[] = (s.routes ?? []).map((path, i) => ({
      id: `${name}-${i}`,
      service: name,
      path: { source: path, segments: path.split('/').filter(Boolean) },
      methods: ['GET'] as HttpMethod[],
      auth: { kind: 'none' },
      rateLimit: null,
      where,
      cors: null,
    }));
    routes.push(...own);
    built[name] = {
      name,
      run: s.run ?? FIXTURE_SERVICE,
      routes: own,
      calls: (s.calls ?? []).map((service) => ({ service, methods: ['GET'] as HttpMethod[], paths: [] })),
      secrets: [],
      env: s.env ?? {},
    };
  }
  const identityPort = sketch.identityPort ?? 1;
  return {
    file,
    dir,
    trustDomain: 'test.local',
    gateway: {
      listen: { host: '127.0.0.1', port: sketch.gatewayPort ?? 1 },
      admin: { port: 0 },
      tls: { mode: 'off' },
      trustedProxies: [],
      rateLimit: { store: 'memory' },
      workers: 1,
      redirectHttp: null,
      limits: { ...DEFAULTS.gatewayLimits },
    },
    identity:
      sketch.identity === 'external'
        ? { mode: 'external', issuer: 'https://idp.example.com', jwksUri: null, audience: 'https://api.test.local' }
        : {
            mode: 'builtin',
            port: identityPort,
            issuer: '',
            audience: 'https://api.test.local',
            store: { kind: 'sqlite' },
          },
    control: { store: { kind: 'sqlite' } },
    secrets: {},
    services: built,
    routes,
  };
}
