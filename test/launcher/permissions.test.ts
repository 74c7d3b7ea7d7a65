/**
 * Least privilege, for real: a child started exactly the way the launcher starts a service (same
 * command, environment and working directory) tries to reach another service's data directory
 * through the file system and through every door to `node:sqlite`.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import type { Manifest } from '../../src/config/model.ts';
import { rampartPackageRoot, readableRoots } from '../../src/launcher/allow-list.ts';
import { childEnv } from '../../src/launcher/child-env.ts';
import { childCommand } from '../../src/launcher/command.ts';
import { prepareDataDirs } from '../../src/launcher/data-dirs.ts';
import { type PlannedProcess, planProcesses } from '../../src/launcher/plan.ts';
import { type CleanupContext, spawnTracked, waitForLine } from '../helpers/processes.ts';
import { FIXTURE_ENTRIES, FIXTURES, handManifest, makeProject, REPO } from './project.ts';

const EXPECTED: Record<string, string> = {
  readOther: 'ERR_ACCESS_DENIED',
  listOther: 'ERR_ACCESS_DENIED',
  listDataRoot: 'ERR_ACCESS_DENIED',
  writeOther: 'ERR_ACCESS_DENIED',
  writeProject: 'ERR_ACCESS_DENIED',
  readProject: 'ok',
  writeOwn: 'ok',
  readOwn: 'ok',
  procSelf: 'ok',
  procOther: 'ERR_ACCESS_DENIED',
  childProcess: 'ERR_ACCESS_DENIED',
  worker: 'ERR_ACCESS_DENIED',
  sqliteOwn: 'ok',
  sqliteMemory: 'ok',
  sqliteImport: 'ERR_ACCESS_DENIED',
  sqliteImportDefault: 'ERR_ACCESS_DENIED',
  sqliteRequire: 'ERR_ACCESS_DENIED',
  sqliteBuiltin: 'ERR_ACCESS_DENIED',
  sqliteModuleLoad: 'ERR_ACCESS_DENIED',
  sqliteConstructorOfInstance: 'ERR_ACCESS_DENIED',
  sqliteRelative: 'ERR_ACCESS_DENIED',
  sqliteFileUri: 'ERR_ACCESS_DENIED',
  sqliteUrl: 'ERR_ACCESS_DENIED',
  sqliteAttach: 'ERR_SQLITE_ERROR',
  sqliteAttachAfterClearing: 'ERR_SQLITE_ERROR',
  sqliteVacuumInto: 'ERR_SQLITE_ERROR',
  sqliteBackup: 'ERR_ACCESS_DENIED',
  sqliteBackupOwn: 'ok',
  sqliteExtension: 'ERR_ACCESS_DENIED',
  sqliteProcessBinding: 'ERR_ACCESS_DENIED',
  sqliteLaterHook: 'ERR_ACCESS_DENIED',
  sdk: 'ok',
};

interface Setup {
  manifest: Manifest;
  probe: PlannedProcess;
  otherDir: string;
}

/** A project with services `probe` (the probe, copied in) and `other` (whose data dir holds secrets). */
function setUp(dir: string): Setup {
  copyFileSync(join(FIXTURES, 'probe.ts'), join(dir, 'services', 'probe.ts'));
  const manifest = handManifest(dir, {
    probe: {
      run: join(dir, 'services', 'probe.ts'),
      env: { PROBE_OTHER: join(dir, '.rampart', 'other'), PROBE_PROJECT: dir },
    },
    other: {},
  });
  const dataRoot = join(dir, '.rampart');
  prepareDataDirs(dataRoot, ['control', 'identity', 'probe', 'other', 'gateway']);
  const otherDir = join(dataRoot, 'other');
  writeFileSync(join(otherDir, 'secret.txt'), 'other service secret');
  const db = new DatabaseSync(join(otherDir, 'data.db'));
  db.exec("CREATE TABLE secrets (v); INSERT INTO secrets VALUES ('s')");
  db.close();
  const ports = {
    admin: { control: 1, identity: 2, probe: 3, other: 4, gateway: 5 },
    service: { probe: 6, other: 7 },
    control: 8,
  };
  const plans = planProcesses(manifest, { ports, dataRoot, entries: FIXTURE_ENTRIES });
  return { manifest, probe: plans.find((p) => p.name === 'probe')!, otherDir };
}

/** Runs the probe as the launcher would run it and returns its results. */
async function runProbe(
  t: CleanupContext,
  setup: Setup,
  options: { preload?: string } = {},
): Promise<Record<string, string>> {
  const { args } = childCommand(setup.probe, {
    roots: readableRoots(setup.manifest.dir, rampartPackageRoot()),
    dataRoot: join(setup.manifest.dir, '.rampart'),
    fromSource: true,
    ...(options.preload ? { preload: options.preload } : {}),
  });
  const env = childEnv(setup.probe.runtime, setup.probe.env, process.env);
  const child = spawnTracked(t, process.execPath, args, { cwd: setup.probe.runtime.dataDir, env });
  const [, json] = await waitForLine(child, /^PROBE (.*)$/m, 20_000);
  return JSON.parse(json!) as Record<string, string>;
}

function assertOtherUntouched(otherDir: string): void {
  assert.deepEqual(
    readdirSync(otherDir).sort(),
    ['data.db', 'secret.txt'],
    'nothing was planted in the other data dir',
  );
  const db = new DatabaseSync(join(otherDir, 'data.db'), { readOnly: true });
  const tables = db
    .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
    .all()
    .map((row) => ({ ...row }));
  db.close();
  assert.deepEqual(tables, [{ name: 'secrets' }]);
}

test('a service in a user project reaches only its own data directory (fs, node:sqlite) and still loads rampart/sdk', async (t) => {
  const setup = setUp(makeProject(t));
  const results = await runProbe(t, setup);
  assert.deepEqual(results, EXPECTED);
  assertOtherUntouched(setup.otherDir);
});

test('the same holds for a project inside the rampart checkout (how examples/shop runs)', async (t) => {
  const dir = realpathSync(mkdtempSync(join(REPO, 'test', 'launcher', '.scratch-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'services'));
  const setup = setUp(dir);
  const results = await runProbe(t, setup);
  assert.deepEqual(results, EXPECTED);
  assertOtherUntouched(setup.otherDir);
});

test('control: without the sqlite preload, Node 24 lets node:sqlite open another data dir (the gap the guard closes)', async (t) => {
  const dir = makeProject(t);
  const setup = setUp(dir);
  const empty = join(dir, 'empty-preload.mjs');
  writeFileSync(empty, '');
  const results = await runProbe(t, setup, { preload: new URL(`file://${empty}`).href });
  // If this fails because Node now enforces the permission model in node:sqlite, the guard is a
  // second lock rather than the only one: keep it, and update this expectation.
  assert.equal(results['sqliteImport'], 'ok');
  assert.equal(results['readOther'], 'ERR_ACCESS_DENIED');
});
