/**
 * Supervision with real processes (the stand-in fixture): crashed processes come back with backoff,
 * a process that keeps crashing makes the launcher give up loudly and stop everything, a process
 * that never gets ready fails the start naming it.
 */
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { Manifest } from '../../src/config/model.ts';
import { isRampartError } from '../../src/core/errors.ts';
import { Launcher, type LauncherOptions } from '../../src/launcher/launcher.ts';
import { Capture } from '../helpers/capture.ts';
import { type CleanupContext, pidsAlive, waitForPidsGone } from '../helpers/processes.ts';
import { FIXTURE_ENTRIES, handManifest, makeProject, type ServiceSketch } from './project.ts';

interface Run {
  launcher: Launcher;
  manifest: Manifest;
  out: () => string;
  err: () => string;
  /** Every pid any process of this launcher ever had. */
  pids: () => number[];
}

function launch(
  t: CleanupContext,
  services: Record<string, ServiceSketch>,
  options: Partial<LauncherOptions> = {},
): Run {
  const manifest = handManifest(makeProject(t), services);
  const out = new Capture();
  const err = new Capture();
  const launcher = new Launcher(manifest, {
    stdout: out,
    stderr: err,
    entries: FIXTURE_ENTRIES,
    restartPolicy: { initialDelayMs: 100, jitter: 0, maxCrashes: 4, windowMs: 60_000 },
    stopGraceMs: 2_000,
    ...options,
  });
  const seen = new Set<number>();
  const timer = setInterval(() => {
    for (const p of launcher.processes()) if (p.pid !== null) seen.add(p.pid);
  }, 10);
  t.after(async () => {
    clearInterval(timer);
    launcher.kill();
    await launcher.done;
  });
  return {
    launcher,
    manifest,
    out: () => out.text,
    err: () => err.text,
    pids: () => {
      for (const p of launcher.processes()) if (p.pid !== null) seen.add(p.pid);
      return [...seen];
    },
  };
}

test('a process that crashes while starting is restarted with doubling delays, then the start completes', async (t) => {
  const run = launch(t, { flaky: { env: { FIXTURE_CRASH_TIMES: '2' } }, steady: {} });
  const began = Date.now();
  await run.launcher.start();
  const elapsed = Date.now() - began;

  const flaky = run.launcher.processes().find((p) => p.name === 'flaky')!;
  assert.equal(flaky.restarts, 2);
  assert.ok(run.launcher.processes().every((p) => p.ready));
  assert.match(run.err(), /flaky exited with code 3; restarting in 100 ms/);
  assert.match(run.err(), /flaky exited with code 3; restarting in 200 ms/);
  assert.ok(elapsed >= 300, `the backoff was waited (${elapsed} ms)`);
  assert.match(run.err(), /fixture flaky crashing on start 2/, "the child's stderr is forwarded, prefixed");
  assert.equal(run.launcher.processes().find((p) => p.name === 'steady')!.restarts, 0);

  await run.launcher.stop();
  assert.equal(await run.launcher.done, 0);
  assert.deepEqual(await waitForPidsGone(run.pids()), []);
});

test('a process that crashes while running is restarted on the same ports and reported ready again', async (t) => {
  const run = launch(t, { late: { env: { FIXTURE_CRASH_TIMES: '1', FIXTURE_CRASH_AFTER_MS: '1500' } } });
  await run.launcher.start();
  const before = run.launcher.processes().find((p) => p.name === 'late')!;
  assert.equal(before.restarts, 0);
  const deadline = Date.now() + 10_000;
  while (!/late is ready again/.test(run.out()) && Date.now() < deadline) await delay(50);
  assert.match(run.out(), /late is ready again/);
  const after = run.launcher.processes().find((p) => p.name === 'late')!;
  assert.equal(after.restarts, 1);
  assert.notEqual(after.pid, before.pid);
  assert.equal(after.adminPort, before.adminPort);
  assert.deepEqual(pidsAlive([before.pid!]), []);
  await run.launcher.stop();
  assert.equal(await run.launcher.done, 0);
});

test('a process that keeps crashing makes the launcher give up, name it, show its stderr and stop everything', async (t) => {
  const run = launch(t, { good: {}, doomed: { env: { FIXTURE_CRASH_TIMES: '-1' } } });
  await assert.rejects(run.launcher.start(), (err) => isRampartError(err, 'LAUNCH_ERR_START'));
  assert.equal(await run.launcher.done, 1);
  assert.equal(run.launcher.failure?.process, 'doomed');
  assert.match(run.err(), /doomed exited with code 3; it crashed 4 times within 60s, giving up/);
  assert.match(run.err(), /last stderr lines of doomed:\n.*doomed +│ {3}fixture doomed crashing on start 1\n/);
  assert.match(run.err(), /doomed +│ {3}fixture doomed crashing on start 4\n$/);
  assert.ok(
    run.launcher.failure?.stderr.some((line) => line.includes('crashing on start 4')),
    'the failure carries the last stderr lines',
  );
  assert.deepEqual(await waitForPidsGone(run.pids()), [], 'nothing is left running');
});

test('giving up while running ends the launcher with exit code 1', async (t) => {
  const run = launch(
    t,
    { doomed: { env: { FIXTURE_CRASH_TIMES: '-1', FIXTURE_CRASH_AFTER_MS: '1000' } } },
    { restartPolicy: { initialDelayMs: 50, jitter: 0, maxCrashes: 2, windowMs: 60_000 } },
  );
  await run.launcher.start();
  assert.equal(await run.launcher.done, 1);
  assert.equal(run.launcher.failure?.process, 'doomed');
  assert.match(run.err(), /doomed exited with code 3; it crashed 2 times within 60s, giving up/);
  assert.deepEqual(await waitForPidsGone(run.pids()), []);
});

test('a process that never answers /readyz fails the start with a message naming it', async (t) => {
  const run = launch(
    t,
    { before: {}, stuck: { env: { FIXTURE_NEVER_READY: '1' } }, after: {} },
    // The timeout applies to every process: long enough that `before` is ready on a loaded machine
    // (at 1 s it once was not, and the start failed naming it instead of `stuck`).
    { readyTimeoutMs: 5_000 },
  );
  await assert.rejects(
    run.launcher.start(),
    (err) => isRampartError(err, 'LAUNCH_ERR_START') && /stuck/.test(err.message),
  );
  assert.equal(await run.launcher.done, 1);
  assert.equal(run.launcher.failure?.process, 'stuck');
  assert.match(run.err(), /stuck was not ready within 5s \(http:\/\/127\.0\.0\.1:\d+\/readyz never answered 200\)/);
  const after = run.launcher.processes().find((p) => p.name === 'after')!;
  assert.equal(after.pid, null, 'processes after it were never started');
  assert.equal(run.launcher.processes().find((p) => p.name === 'gateway')!.pid, null, 'the front door never opened');
  assert.deepEqual(await waitForPidsGone(run.pids()), []);
});

test('data directories are private (0700), one per process, and keep restarts on the same ports', async (t) => {
  const run = launch(t, { a: {}, b: {} });
  await run.launcher.start();
  for (const p of run.launcher.processes()) {
    assert.equal(statSync(p.dataDir).mode & 0o777, 0o700, p.name);
  }
  assert.equal(statSync(`${run.manifest.dir}/.rampart`).mode & 0o777, 0o700);
  const ports = run.launcher.processes().map((p) => p.adminPort);
  assert.equal(new Set(ports).size, ports.length, 'every process has its own admin port');
  await run.launcher.stop();
});

test('stopping while starting starts nothing more and leaves nothing behind', async (t) => {
  for (const after of [0, 150, 600]) {
    const run = launch(t, { a: {}, b: {} });
    const starting = run.launcher.start();
    await delay(after);
    await run.launcher.stop();
    await assert.rejects(starting, (err) => isRampartError(err, 'LAUNCH_ERR_STOPPED'), `stop after ${after} ms`);
    assert.equal(await run.launcher.done, 0);
    assert.deepEqual(await waitForPidsGone(run.pids()), [], `stop after ${after} ms`);
    assert.doesNotMatch(run.out(), /Rampart is running/);
  }
});

test('a second launcher on the same manifest refuses to start; a stale lock is taken over', async (t) => {
  const first = launch(t, { a: {} });
  await first.launcher.start();
  const out = new Capture();
  const err = new Capture();
  const second = new Launcher(first.manifest, { stdout: out, stderr: err, entries: FIXTURE_ENTRIES });
  t.after(() => second.kill());
  await assert.rejects(second.start(), (e) => isRampartError(e, 'LAUNCH_ERR_START') && /pid \d+/.test(e.message));
  assert.equal(await second.done, 1);
  assert.match(err.text, /another `rampart start` \(pid \d+\) is running this manifest/);
  assert.ok(
    first.launcher.processes().every((p) => p.ready),
    'the first launcher is unaffected',
  );
  await first.launcher.stop();

  writeFileSync(join(first.manifest.dir, '.rampart', 'launcher.pid'), '999999999\n'); // a launcher that died
  const third = new Launcher(first.manifest, { stdout: out, stderr: err, entries: FIXTURE_ENTRIES });
  t.after(() => third.kill());
  await third.start();
  await third.stop();
  assert.equal(await third.done, 0);
  assert.ok(!existsSync(join(first.manifest.dir, '.rampart', 'launcher.pid')), 'released at stop');
});
