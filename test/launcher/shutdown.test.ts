/**
 * Shutdown with the launcher as a real process: Ctrl-C (SIGINT) and SIGTERM stop everything in
 * reverse order and exit 0 leaving nothing behind; a second Ctrl-C kills at once; a process that
 * ignores SIGTERM is killed after the grace period; if the launcher itself is SIGKILLed, its
 * children notice and exit on their own. Also: children see RAMPART_RUNTIME, never the launcher's env.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  type CleanupContext,
  freePort,
  pgrep,
  spawnTracked,
  type Tracked,
  waitForLine,
  waitForPidsGone,
} from '../helpers/processes.ts';
import { FIXTURE_SERVICE, FIXTURES, makeProject } from './project.ts';

interface Started {
  launcher: Tracked;
  dir: string;
  /** name → pid, from each process's `fixture started` line. */
  children: Map<string, number>;
  /** Every `fixture started` record. */
  records: Record<string, unknown>[];
}

/** Writes a manifest with the given services (all the stand-in) and starts the launcher on it. */
async function startLauncher(
  t: CleanupContext,
  services: Record<string, Record<string, string>>,
  env: Record<string, string> = {},
): Promise<Started> {
  const dir = makeProject(t);
  // A failing test must not leak: the children are in process groups of their own, beyond the
  // launcher's, so sweep whatever still runs for this project when the test ends.
  t.after(async () => {
    for (const pid of await leftovers(dir)) process.kill(pid, 'SIGKILL');
  });
  const [gatewayPort, identityPort] = [await freePort(), await freePort()];
  const lines = [
    'version: 1',
    'trustDomain: test.local',
    'gateway:',
    `  listen: { host: 127.0.0.1, port: ${gatewayPort} }`,
    '  tls: off',
    'identity:',
    `  builtin: { port: ${identityPort} }`,
    '  audience: https://api.test.local',
    'services:',
  ];
  for (const [name, serviceEnv] of Object.entries(services)) {
    lines.push(`  ${name}:`, `    run: ${FIXTURE_SERVICE}`);
    if (Object.keys(serviceEnv).length > 0) lines.push(`    env: ${JSON.stringify(serviceEnv)}`);
  }
  writeFileSync(join(dir, 'rampart.yaml'), `${lines.join('\n')}\n`);
  const launcher = spawnTracked(
    t,
    process.execPath,
    ['--conditions=rampart-source', join(FIXTURES, 'start-with-fixtures.ts'), 'rampart.yaml', '--log-format', 'json'],
    { cwd: dir, env: { ...process.env, ...env } },
  );
  await waitForLine(launcher, /"msg":"ready"/, 30_000);
  const records = launcher
    .stdout()
    .split('\n')
    .filter((line) => line.includes('"fixture started"'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const children = new Map(records.map((r) => [r['name'] as string, r['pid'] as number]));
  assert.deepEqual([...children.keys()].sort(), ['control', 'gateway', 'identity', ...Object.keys(services)].sort());
  return { launcher, dir, children, records };
}

/** Processes whose command line mentions the project (every child's has its data dir in it). */
async function leftovers(dir: string): Promise<number[]> {
  return pgrep(join(dir, '.rampart'));
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`${signal} stops every process in reverse order, exits 0 and leaves nothing behind`, async (t) => {
    const { launcher, dir, children } = await startLauncher(t, { catalog: {}, orders: {} });
    assert.equal((await leftovers(dir)).length, children.size, 'pgrep sees every child while running');

    process.kill(launcher.pid, signal);
    const status = await launcher.exited;
    assert.deepEqual(status, { code: 0, signal: null }, launcher.stderr());
    assert.deepEqual(await waitForPidsGone([...children.values()], 1_000), []);
    assert.deepEqual(await leftovers(dir), []);

    const stopping = launcher
      .stdout()
      .split('\n')
      .filter((line) => line.includes('"msg":"stopping"'))
      .map((line) => (JSON.parse(line) as { name: string }).name);
    assert.deepEqual(stopping, ['gateway', 'orders', 'catalog', 'identity', 'control']);

    // --log-format json: every line is a JSON record as its process wrote it (no prefix, no color).
    for (const line of launcher
      .stdout()
      .split('\n')
      .filter((l) => l !== '')) {
      const record = JSON.parse(line) as { name?: unknown };
      assert.equal(typeof record.name, 'string', line);
    }
  });
}

test('a process that ignores SIGTERM is killed after the grace period', async (t) => {
  const { launcher, dir, children } = await startLauncher(
    t,
    { stubborn: { FIXTURE_IGNORE_SIGTERM: '1' } },
    { FIXTURE_GRACE_MS: '500' },
  );
  process.kill(launcher.pid, 'SIGINT');
  assert.deepEqual(await launcher.exited, { code: 0, signal: null });
  assert.match(launcher.stderr(), /stubborn did not stop within 0\.5s; killing it/);
  assert.deepEqual(await waitForPidsGone([...children.values()], 1_000), []);
  assert.deepEqual(await leftovers(dir), []);
});

test('a second Ctrl-C kills everything at once', async (t) => {
  const { launcher, dir, children } = await startLauncher(
    t,
    { stubborn: { FIXTURE_IGNORE_SIGTERM: '1' } },
    { FIXTURE_GRACE_MS: '60000' },
  );
  process.kill(launcher.pid, 'SIGINT');
  await waitForLine(launcher, /ignoring SIGTERM/, 5_000);
  const began = Date.now();
  process.kill(launcher.pid, 'SIGINT');
  assert.deepEqual(await launcher.exited, { code: 0, signal: null });
  assert.ok(Date.now() - began < 5_000, 'did not wait for the 60 s grace period');
  assert.deepEqual(await waitForPidsGone([...children.values()], 1_000), []);
  assert.deepEqual(await leftovers(dir), []);
});

test('when the launcher is SIGKILLed, its children notice and exit on their own', async (t) => {
  const { launcher, dir, children } = await startLauncher(t, { catalog: {}, orders: {} });
  process.kill(launcher.pid, 'SIGKILL');
  await launcher.exited;
  assert.deepEqual(await waitForPidsGone([...children.values()], 5_000), [], 'every child exited within 5 s');
  assert.deepEqual(await leftovers(dir), []);
});

test("children get RAMPART_RUNTIME and a minimal environment, never the launcher's secrets", async (t) => {
  const { records } = await startLauncher(
    t,
    { catalog: { GREETING: 'hello' } },
    { SECRET_FROM_PARENT: 'hunter2', NODE_OPTIONS: '--max-old-space-size=100', RAMPART_LOG_LEVEL: 'debug' },
  );
  for (const record of records) {
    const keys = record['envKeys'] as string[];
    assert.ok(keys.includes('RAMPART_RUNTIME'), `${record['name']} has its runtime`);
    assert.ok(!keys.includes('SECRET_FROM_PARENT'), `${record['name']} must not see the launcher's secrets`);
    const allowed = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'NODE_ENV', 'RAMPART_RUNTIME', 'GREETING'];
    assert.deepEqual(
      keys.filter((key) => !allowed.includes(key)),
      [],
      `${record['name']} sees only the allow-listed variables`,
    );
    assert.equal(record['watching'], true, `${record['name']} watches its launcher`);
  }
  const catalog = records.find((r) => r['name'] === 'catalog')!;
  assert.ok((catalog['envKeys'] as string[]).includes('GREETING'), 'the manifest env reaches its service');
  const control = records.find((r) => r['name'] === 'control')!;
  assert.ok(!(control['envKeys'] as string[]).includes('GREETING'), 'and only its service');
});
