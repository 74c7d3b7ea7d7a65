/**
 * `rampart start` as a user runs it (`bin/rampart.js`), with the real control plane, identity and
 * gateway and a service built on `rampart/sdk` in a scratch project.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  freePort,
  httpGet,
  pgrep,
  spawnTracked,
  waitForHttp,
  waitForLine,
  waitForPidsGone,
} from '../helpers/processes.ts';
import { makeProject, REPO } from './project.ts';

const BIN = join(REPO, 'bin', 'rampart.js');

function rampart(t: Parameters<typeof spawnTracked>[0], args: string[], cwd: string) {
  return spawnTracked(t, process.execPath, ['--conditions=rampart-source', BIN, ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1' },
  });
}

test('rampart start --help prints usage and exits 0; a bad option exits 2', async (t) => {
  const help = rampart(t, ['start', '--help'], REPO);
  assert.equal((await help.exited).code, 0);
  assert.match(help.stdout(), /Usage: rampart start \[file\] \[--log-format pretty\|json\]/);

  const bad = rampart(t, ['start', '--log-format', 'xml'], REPO);
  assert.equal((await bad.exited).code, 2);
  assert.match(bad.stderr(), /--log-format must be pretty or json/);
});

test('an invalid manifest prints its issues, no stack trace, and exits 2', async (t) => {
  const dir = makeProject(t);
  writeFileSync(
    join(dir, 'rampart.yaml'),
    'version: 1\ntrustDomain: test.local\nservices:\n  a: { run: nope.ts, colour: red }\n',
  );
  const start = rampart(t, ['start'], dir);
  assert.equal((await start.exited).code, 2);
  assert.match(start.stderr(), /rampart\.yaml:\d+:\d+ .*\[CFG_ERR_[A-Z_]+\]/);
  assert.doesNotMatch(start.stderr(), /^\s+at /m, 'no stack trace');
  assert.equal(start.stdout(), '');
});

/** A scratch project with one SDK service, `hello`, behind a public route; returns its dir and gateway port. */
async function shopOfOne(t: Parameters<typeof spawnTracked>[0]): Promise<{ dir: string; gatewayPort: number }> {
  const dir = makeProject(t);
  t.after(async () => {
    for (const pid of await pgrep(join(dir, '.rampart'))) process.kill(pid, 'SIGKILL');
  });
  writeFileSync(
    join(dir, 'services', 'hello.ts'),
    [
      "import { service } from 'rampart/sdk';",
      'const svc = service();',
      "svc.database().exec('CREATE TABLE IF NOT EXISTS visits (at TEXT)');",
      "svc.app.get('/hello', async () => ({ hello: svc.name }));",
      'await svc.start();',
      '',
    ].join('\n'),
  );
  const [gatewayPort, identityPort] = [await freePort(), await freePort()];
  writeFileSync(
    join(dir, 'rampart.yaml'),
    [
      'version: 1',
      'trustDomain: test.local',
      'gateway:',
      `  listen: { host: 127.0.0.1, port: ${gatewayPort} }`,
      '  tls: off',
      'identity:',
      `  builtin: { port: ${identityPort} }`,
      '  audience: https://api.test.local',
      'services:',
      '  hello:',
      '    run: services/hello.ts',
      '    routes:',
      '      - { id: hello, path: /hello, methods: [GET], auth: none }',
      '',
    ].join('\n'),
  );

  return { dir, gatewayPort };
}

test('starts the real components and an SDK service, serves through the gateway, stops on Ctrl-C leaving nothing', async (t) => {
  const { dir, gatewayPort } = await shopOfOne(t);
  const start = rampart(t, ['start'], dir);
  await waitForLine(start, /Rampart is running: 4 processes ready\./, 60_000);
  const out = start.stdout();
  assert.match(out, new RegExp(`gateway +http://127\\.0\\.0\\.1:${gatewayPort}`));
  assert.match(out, new RegExp(`curl http://127\\.0\\.0\\.1:${gatewayPort}/hello`));
  assert.match(out, /rampart check /);
  assert.match(out, /control +│ info /, 'pretty lines, prefixed with the process name');
  assert.ok(!out.includes('\u001b['), 'no colors when NO_COLOR is set and stdout is no TTY');

  const res = await waitForHttp(`http://127.0.0.1:${gatewayPort}/hello`, (status) => status === 200, 10_000);
  assert.deepEqual(JSON.parse(res.body), { hello: 'hello' });
  for (const [, port] of out.matchAll(/http:\/\/127\.0\.0\.1:(\d+)\/readyz/g)) {
    assert.equal((await httpGet(`http://127.0.0.1:${port}/readyz`)).status, 200);
  }

  const children = await pgrep(join(dir, '.rampart'));
  assert.equal(children.length, 4, 'control, identity, hello and gateway each run as their own process');
  start.signal('SIGINT'); // as a terminal's Ctrl-C: to the launcher's foreground group only
  assert.deepEqual(await start.exited, { code: 0, signal: null }, start.stderr());
  assert.deepEqual(await waitForPidsGone(children, 1_000), []);
  assert.deepEqual(await pgrep(join(dir, '.rampart')), []);
});

test('with the real components: if the launcher is SIGKILLed, every process exits on its own', async (t) => {
  const { dir } = await shopOfOne(t);
  const start = rampart(t, ['start'], dir);
  await waitForLine(start, /Rampart is running: 4 processes ready\./, 60_000);
  const children = await pgrep(join(dir, '.rampart'));
  assert.equal(children.length, 4);
  start.child.kill('SIGKILL'); // the launcher alone, as `kill -9 <pid>` would
  await start.exited;
  assert.deepEqual(await waitForPidsGone(children, 5_000), [], 'every process noticed and exited within 5 s');
});
