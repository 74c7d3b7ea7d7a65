/**
 * Restarts and join tokens, with a real control plane: a workload that is restarted while the control
 * plane cannot mint (here: it is restarting too) waits for a fresh single-use token instead of starting
 * with the one its previous process spent, the wait is logged once and costs none of the restart
 * budget, and a stop during the wait starts nothing and leaves nothing behind. The workload is the
 * stand-in with FIXTURE_ATTEST: it spends its token on an SVID first and exits when that is refused.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { loadManifest } from '../../src/config/load.ts';
import { killGroup, Launcher } from '../../src/launcher/launcher.ts';
import { Capture } from '../helpers/capture.ts';
import { type CleanupContext, freePort, waitForPidsGone } from '../helpers/processes.ts';
import { FIXTURE_SERVICE, makeProject } from './project.ts';

interface Run {
  launcher: Launcher;
  dir: string;
  out: () => string;
  err: () => string;
  pids: () => number[];
  pid: (name: string) => number;
}

async function launch(t: CleanupContext): Promise<Run> {
  const dir = makeProject(t);
  writeFileSync(join(dir, 'services', 'worker.ts'), `import ${JSON.stringify(FIXTURE_SERVICE)};\n`);
  writeFileSync(
    join(dir, 'rampart.yaml'),
    [
      'trustDomain: tokens.test',
      'gateway:',
      `  listen: { host: 127.0.0.1, port: ${await freePort()} }`,
      '  tls: off',
      'identity:',
      '  external: { issuer: "https://idp.example.test", jwksUri: "https://idp.example.test/jwks" }',
      '  audience: https://api.tokens.test',
      'services:',
      '  worker:',
      '    run: services/worker.ts',
      '    env: { FIXTURE_ATTEST: "1" }',
      '',
    ].join('\n'),
  );
  const out = new Capture();
  const err = new Capture();
  const launcher = new Launcher(loadManifest(join(dir, 'rampart.yaml')), {
    stdout: out,
    stderr: err,
    // The real control plane; the gateway is played by the stand-in (it gets a token it ignores).
    entries: { gateway: FIXTURE_SERVICE },
    workloadIdentity: true,
    // Three crashes in a minute end everything: a restart that started with the spent token would
    // crash twice more before the control plane is back.
    restartPolicy: { initialDelayMs: 100, maxDelayMs: 400, jitter: 0, maxCrashes: 3, windowMs: 60_000 },
    stopGraceMs: 5_000,
    cwd: dir,
  });
  const seen = new Set<number>();
  const remember = () => {
    for (const p of launcher.processes()) if (p.pid !== null) seen.add(p.pid);
  };
  const timer = setInterval(remember, 10);
  t.after(async () => {
    clearInterval(timer);
    launcher.kill();
    await launcher.done;
  });
  return {
    launcher,
    dir,
    out: () => out.text,
    err: () => err.text,
    pids: () => {
      remember();
      return [...seen];
    },
    pid: (name) => {
      const pid = launcher.processes().find((p) => p.name === name)?.pid;
      assert.ok(typeof pid === 'number', `${name} runs`);
      return pid;
    },
  };
}

async function waitFor(text: () => string, pattern: RegExp, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(text()) && Date.now() < deadline) await delay(20);
  assert.match(text(), pattern);
}

const count = (text: string, pattern: RegExp) => text.match(new RegExp(pattern, 'g'))?.length ?? 0;
const starts = (run: Run) => Number(readFileSync(join(run.dir, '.rampart', 'worker', 'starts'), 'utf8'));

test('a workload restarted while the control plane is down waits for a fresh join token, without spending its restart budget', {
  timeout: 90_000,
}, async (t) => {
  const run = await launch(t);
  await run.launcher.start();
  assert.equal(count(run.out(), /fixture attested/), 1, 'the first process spent its token');

  // The control plane and the workload die together: both are restarted after 100 ms, and the
  // control plane needs a while before it listens again, so the workload's restart finds it away.
  killGroup(run.pid('control'), 'SIGKILL');
  killGroup(run.pid('worker'), 'SIGKILL');
  await waitFor(run.out, /worker is ready again/);

  const waiting = count(run.err(), /worker cannot start yet: the control plane mints no join token \([A-Z_]+\)/);
  const minted = run.out().match(/worker: join token minted after (\d+) attempts/);
  assert.ok(minted, 'the wait ended with a token');
  const attempts = Number(minted[1]);
  assert.ok(attempts >= 2, `it did wait (${attempts} attempts)`);
  assert.ok(waiting >= 1 && waiting < attempts, `logged per state (${waiting}), not per attempt (${attempts})`);
  assert.doesNotMatch(run.err(), /attestation failed/, 'no process started with a spent token');
  assert.equal(starts(run), 2, 'one restart, started once');
  assert.equal(count(run.out(), /fixture attested/), 2, 'the restarted workload got its SVID with the new token');
  const worker = run.launcher.processes().find((p) => p.name === 'worker');
  assert.equal(worker?.restarts, 1);
  assert.equal(run.launcher.failure, null);

  // The budget is intact: two more crashes (three in the window with the first) are needed to give up,
  // and one more is only restarted.
  killGroup(run.pid('worker'), 'SIGKILL');
  await waitFor(run.out, /worker is ready again[\s\S]*worker is ready again/);
  assert.equal(run.launcher.failure, null);

  await run.launcher.stop();
  assert.equal(await run.launcher.done, 0);
  assert.deepEqual(await waitForPidsGone(run.pids()), []);
});

test('a stop while a restart waits for its join token starts nothing and leaves nothing behind', {
  timeout: 60_000,
}, async (t) => {
  const run = await launch(t);
  await run.launcher.start();
  killGroup(run.pid('control'), 'SIGKILL');
  killGroup(run.pid('worker'), 'SIGKILL');
  await waitFor(run.err, /worker cannot start yet/);
  const began = Date.now();
  await run.launcher.stop();
  assert.ok(Date.now() - began < 5_000, `stopped in ${Date.now() - began} ms`);
  assert.equal(await run.launcher.done, 0);
  assert.equal(run.launcher.failure, null);
  await delay(300);
  assert.equal(starts(run), 1, 'the waiting workload was never started again');
  assert.doesNotMatch(run.out(), /join token minted/);
  assert.deepEqual(await waitForPidsGone(run.pids()), []);
});
