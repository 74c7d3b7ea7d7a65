import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnTracked, waitForLine } from '../../test/helpers/processes.ts';

const WATCHER = join(import.meta.dirname, '..', '..', 'test', 'launcher', 'fixtures', 'watcher.ts');
const RUNTIME = { RAMPART_RUNTIME: JSON.stringify({ kind: 'service', name: 'w' }) };

test('watchLauncher: when the launcher end of the stdin pipe closes, the process stops through its SIGTERM handler', async (t) => {
  const child = spawnTracked(t, process.execPath, [WATCHER], { env: { ...process.env, ...RUNTIME } });
  await waitForLine(child, /^watching=true$/m, 10_000);
  child.child.stdin!.end(); // what the kernel does when the launcher dies
  assert.deepEqual(await child.exited, { code: 0, signal: null });
  assert.match(child.stdout(), /^SIGTERM handled$/m);
});

test('watchLauncher: does nothing outside the launcher or without a stdin pipe', async (t) => {
  const noRuntime = spawnTracked(t, process.execPath, [WATCHER], {
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'RAMPART_RUNTIME')),
  });
  const devNull = spawnTracked(t, process.execPath, [WATCHER], {
    env: { ...process.env, ...RUNTIME },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  assert.match((await waitForLine(noRuntime, /^watching=\w+$/m, 10_000))[0], /false/);
  assert.match((await waitForLine(devNull, /^watching=\w+$/m, 10_000))[0], /false/, '/dev/null is not a launcher');
  // Not watching must not mean exiting: both are still running a second later.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.equal(noRuntime.child.exitCode, null);
  assert.equal(devNull.child.exitCode, null);
});
