/** The shared test helper (test/helpers/processes.ts) must not leak, grandchildren included. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pgrep, pidsAlive, spawnTracked, waitForLine, waitForPidsGone } from '../helpers/processes.ts';

// A child that starts a grandchild which ignores SIGTERM, and prints both pids.
const FAMILY = `
const { spawn } = require('node:child_process');
const grandchild = spawn(process.execPath, ['-e', 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000); // rampart-helper-test'], { stdio: 'ignore' });
console.log('pids ' + process.pid + ' ' + grandchild.pid);
setInterval(() => {}, 1000);
`;

test('a test that ends kills what it spawned, grandchildren included', async (t) => {
  let pids: number[] = [];
  await t.test('inner test that forgets to stop its processes', async (inner) => {
    const family = spawnTracked(inner, process.execPath, ['-e', FAMILY]);
    const [, parent, grandchild] = await waitForLine(family, /pids (\d+) (\d+)/);
    pids = [Number(parent), Number(grandchild)];
    assert.deepEqual(pidsAlive(pids), pids);
  });
  assert.deepEqual(await waitForPidsGone(pids, 5_000), [], 'the after hook killed the whole group');
  assert.deepEqual(await pgrep('rampart-helper-test'), []);
});

test('stop(): SIGTERM, then SIGKILL after the grace period; idempotent', async (t) => {
  const stubborn = spawnTracked(t, process.execPath, [
    '-e',
    'process.on("SIGTERM", () => {}); console.log("up"); setInterval(() => {}, 1000)',
  ]);
  await waitForLine(stubborn, /up/);
  const began = Date.now();
  const [a, b] = await Promise.all([stubborn.stop(300), stubborn.stop(300)]);
  assert.deepEqual(a, { code: null, signal: 'SIGKILL' });
  assert.equal(a, b);
  assert.ok(Date.now() - began < 3_000);
});

test('waitForLine rejects with the output when the process exits first', async (t) => {
  const quitter = spawnTracked(t, process.execPath, ['-e', 'console.log("bye")']);
  await assert.rejects(waitForLine(quitter, /never/, 5_000), /the process exited before a line matched[\s\S]*bye/);
});
