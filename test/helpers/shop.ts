import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CleanupContext, spawnTracked, type Tracked, waitForLine } from './processes.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const RAMPART = join(REPO, 'bin', 'rampart.js');

/**
 * Starts a copy of the example shop as a developer does: sets the payments service's processor key
 * (payments answers 503 until it is set) with `rampart secrets set --create-dev-key`, then runs
 * `rampart start <dir>/rampart.yaml` and resolves once the launcher says every process is ready. The launcher
 * (and the key-setting process) are stopped through `t`.
 */
export async function startShop(t: CleanupContext, dir: string, readyTimeoutMs: number): Promise<Tracked> {
  const setKey = spawnTracked(
    t,
    process.execPath,
    [RAMPART, 'secrets', 'set', 'payment-provider-key', '--create-dev-key'],
    {
      cwd: dir,
    },
  );
  setKey.child.stdin?.end('sk_test_shop');
  assert.equal((await setKey.exited).code, 0, setKey.stderr());
  const launcher = spawnTracked(t, process.execPath, [RAMPART, 'start', join(dir, 'rampart.yaml')], {
    cwd: REPO,
    env: { ...process.env, NO_COLOR: '1' },
  });
  await waitForLine(launcher, /Rampart is running: \d+ processes ready/, readyTimeoutMs);
  return launcher;
}
