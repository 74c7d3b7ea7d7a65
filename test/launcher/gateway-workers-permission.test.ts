/**
 * Only the gateway may start worker threads, and its workers stay inside the gateway's permission
 * model as long as they inherit its arguments (which is how src/gateway/process/worker-pool.ts starts
 * them). The control case records the gap Node leaves: a worker given `execArgv: []` is unrestricted.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { rampartPackageRoot, readableRoots } from '../../src/launcher/allow-list.ts';
import { childEnv } from '../../src/launcher/child-env.ts';
import { childCommand, GATEWAY_WORKER_ARGS } from '../../src/launcher/command.ts';
import { prepareDataDirs } from '../../src/launcher/data-dirs.ts';
import { planProcesses } from '../../src/launcher/plan.ts';
import { spawnTracked, waitForLine } from '../helpers/processes.ts';
import { FIXTURE_ENTRIES, FIXTURES, handManifest, makeProject } from './project.ts';

function setUp(dir: string) {
  const manifest = handManifest(dir, { web: { routes: ['/web'] }, other: {} });
  const dataRoot = join(dir, '.rampart');
  prepareDataDirs(dataRoot, ['control', 'identity', 'web', 'other', 'gateway']);
  writeFileSync(join(dataRoot, 'other', 'secret.txt'), 'other service secret');
  writeFileSync(manifest.file, '# the manifest\n');
  const ports = {
    admin: { control: 1, identity: 2, web: 3, other: 4, gateway: 5 },
    service: { web: 6, other: 7 },
    control: 8,
  };
  const plans = planProcesses(manifest, {
    ports,
    dataRoot,
    entries: { ...FIXTURE_ENTRIES, gateway: join(FIXTURES, 'gateway-worker-probe.ts') },
  });
  const options = { roots: readableRoots(dir, rampartPackageRoot()), dataRoot, fromSource: true };
  return { plans, options, dataRoot };
}

test('--allow-worker goes to the gateway and to no other process', (t) => {
  const { plans, options } = setUp(makeProject(t));
  for (const plan of plans) {
    const { args } = childCommand(plan, options);
    const granted = args.includes('--allow-worker');
    assert.equal(granted, plan.kind === 'gateway', plan.name);
    if (granted) {
      for (const arg of GATEWAY_WORKER_ARGS) assert.ok(args.includes(arg), arg);
      assert.ok(args.indexOf('--allow-worker') < args.length - 1, 'a Node option, before the entry file');
    }
    assert.ok(args.includes('--permission'), plan.name);
    assert.ok(!args.some((a) => a.startsWith('--allow-child-process')), plan.name);
    // Addons (sodium-native for the CA's KEK) for the control plane only (command.ts CONTROL_ADDON_ARGS).
    assert.equal(args.includes('--allow-addons'), plan.kind === 'control', plan.name);
  }
});

test('a gateway worker that inherits its arguments is held to the gateway allow-list; execArgv: [] is not (control)', async (t) => {
  const { plans, options, dataRoot } = setUp(makeProject(t));
  const gateway = plans.find((p) => p.kind === 'gateway')!;
  const { args } = childCommand(gateway, options);
  const child = spawnTracked(t, process.execPath, args, {
    cwd: gateway.runtime.dataDir,
    env: childEnv(gateway.runtime, {}, process.env),
  });
  const [, json] = await waitForLine(child, /^PROBE (.*)$/m, 20_000);
  const { inherited, unrestricted } = JSON.parse(json!) as Record<string, Record<string, string>>;
  assert.deepEqual(inherited, {
    readOther: 'ERR_ACCESS_DENIED',
    writeOther: 'ERR_ACCESS_DENIED',
    readProject: 'ok',
    writeOwn: 'ok',
  });
  // If this fails because Node now carries the permission model into every worker (nodejs/node#62222),
  // the gap is closed: update this expectation and the note in src/launcher/command.ts.
  assert.equal(unrestricted?.['readOther'], 'ok');
  assert.equal(readFileSync(join(dataRoot, 'other', 'secret.txt'), 'utf8'), 'planted', 'the unrestricted worker wrote');
  assert.doesNotMatch(child.stderr(), /PERM0006/, 'the documented warning is off');
});
