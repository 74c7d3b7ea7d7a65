/**
 * Issue 4: "policy updates from a changed manifest reach every service without a restart
 * (versioned)". A real system under `rampart start`: `beta` may call `alpha` on `GET /a` only. The test
 * reaches beta through the gateway (`GET /try/<path>` makes beta call alpha's `/<path>` over mTLS and
 * report alpha's status), edits the manifest to grant `/b`, then to revoke `/a`, and watches alpha's
 * answers change within a bounded time while both services keep their PIDs. An unrelated edit is no
 * new version; a broken manifest keeps the last good policy.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';
import { freePort, httpGet, pgrep, spawnTracked, type Tracked, waitForLine } from '../helpers/processes.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const AUDIENCE = 'https://api.policy.local';
/** Services poll every 250 ms here (the default is POLICY_DEFAULTS.refreshMs). */
const REFRESH_MS = 250;
/** How long a manifest edit may take to reach the callee: debounce + a poll, with a wide margin for a busy machine. */
const BOUND_MS = 15_000;

const ALPHA = `import { service } from 'rampart/sdk';
const svc = service({ policyRefreshMs: ${REFRESH_MS} });
svc.app.get('/a', async () => ({ pid: process.pid, path: 'a' }));
svc.app.get('/b', async () => ({ pid: process.pid, path: 'b' }));
await svc.start();
`;

const BETA = `import { service } from 'rampart/sdk';
const svc = service({ policyRefreshMs: ${REFRESH_MS} });
svc.app.get('/try/:which', async (req) => {
  const res = await svc.call('alpha', '/' + req.params.which);
  return { status: res.status, pid: process.pid, alpha: await res.json() };
});
await svc.start();
`;

interface Sketch {
  /** Paths beta may GET on alpha. */
  grants: string[];
  rate?: string;
}

function manifest(gatewayPort: number, issuer: TestIssuer, { grants, rate = '1000/min per ip' }: Sketch): string {
  return [
    'version: 1',
    'trustDomain: policy.local',
    'gateway:',
    `  listen: { host: 127.0.0.1, port: ${gatewayPort} }`,
    '  tls: off',
    'identity:',
    `  external: { issuer: ${issuer.issuer}, jwksUri: ${issuer.jwksUri} }`,
    `  audience: ${AUDIENCE}`,
    'services:',
    '  alpha:',
    '    run: services/alpha.ts',
    '  beta:',
    '    run: services/beta.ts',
    '    routes:',
    `      - { id: try, path: /try/*, methods: [GET], auth: none, rateLimit: ${rate} }`,
    '    calls:',
    `      - { service: alpha, methods: [GET], paths: [${grants.join(', ')}] }`,
    '',
  ].join('\n');
}

interface Tried {
  /** The gateway's status (200 when beta answered). */
  gateway: number;
  /** Alpha's status as beta saw it. */
  status: number;
  betaPid: number;
  alphaPid: number | null;
}

describe('policy updates reach services without a restart', { timeout: 180_000 }, () => {
  let issuer: TestIssuer;
  let dir: string;
  let gatewayPort: number;
  let launcher: Tracked;
  const cleanups: (() => unknown)[] = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };

  const write = (sketch: Sketch) => writeFileSync(join(dir, 'rampart.yaml'), manifest(gatewayPort, issuer, sketch));

  const tryPath = async (path: 'a' | 'b'): Promise<Tried> => {
    const res = await httpGet(`http://127.0.0.1:${gatewayPort}/try/${path}`, 5_000);
    if (res.status !== 200) return { gateway: res.status, status: 0, betaPid: 0, alphaPid: null };
    const body = JSON.parse(res.body) as { status: number; pid: number; alpha: { pid?: number } };
    return { gateway: 200, status: body.status, betaPid: body.pid, alphaPid: body.alpha.pid ?? null };
  };

  /** Polls until beta sees `status` from alpha on `path`; resolves with the time it took. */
  const until = async (path: 'a' | 'b', status: number): Promise<{ ms: number; tried: Tried }> => {
    const start = performance.now();
    for (;;) {
      const tried = await tryPath(path);
      if (tried.status === status) return { ms: Math.round(performance.now() - start), tried };
      if (performance.now() - start > BOUND_MS) {
        assert.fail(`after ${BOUND_MS} ms /try/${path} still gives ${JSON.stringify(tried)}, expected ${status}`);
      }
      await delay(50);
    }
  };

  before(async () => {
    issuer = await startTestIssuer(AUDIENCE);
    dir = join(root, 'test', '.scratch', `policy-update-${process.pid}-${Date.now()}`);
    mkdirSync(join(dir, 'services'), { recursive: true });
    writeFileSync(join(dir, 'services', 'alpha.ts'), ALPHA);
    writeFileSync(join(dir, 'services', 'beta.ts'), BETA);
    gatewayPort = await freePort();
    write({ grants: ['/a'] });
    launcher = spawnTracked(
      ctx,
      process.execPath,
      [join(root, 'bin', 'rampart.js'), 'start', join(dir, 'rampart.yaml'), '--log-format', 'json'],
      { cwd: root, env: { ...process.env, NO_COLOR: '1' } },
    );
    await waitForLine(launcher, /"msg":"ready"/, 90_000);
  });

  after(async () => {
    if (launcher) writeFileSync(`${dir}.log`, `${launcher.stdout()}\n--- stderr ---\n${launcher.stderr()}`);
    for (const fn of cleanups.reverse()) await fn();
    // Only this system's processes: each one's write grant names its data directory under `${dir}/.rampart/`
    // (a bare `dir` would also match other tests' processes, whose read grants list sibling scratch dirs).
    for (const pid of await pgrep(`${dir}/.rampart/`)) process.kill(pid, 'SIGKILL');
    await issuer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a grant added reaches the callee (403 → 200), a grant removed too (200 → 403), same PIDs', async (t) => {
    const first = await tryPath('a');
    assert.equal(first.gateway, 200);
    assert.equal(first.status, 200, 'granted at start');
    assert.ok(first.alphaPid && first.betaPid);
    assert.equal((await tryPath('b')).status, 403, 'not granted at start: alpha refuses beta');

    write({ grants: ['/a', '/b'] });
    const granted = await until('b', 200);
    assert.equal((await tryPath('a')).status, 200, '/a is still granted');

    write({ grants: ['/b'] });
    const revoked = await until('a', 403);
    const last = await tryPath('b');
    assert.equal(last.status, 200);

    // Neither service restarted: the same processes answered throughout.
    assert.equal(granted.tried.alphaPid, first.alphaPid);
    assert.equal(last.alphaPid, first.alphaPid);
    assert.equal(last.betaPid, first.betaPid);
    assert.equal(revoked.tried.betaPid, first.betaPid);

    // Versioned: the control plane went 1 → 2 → 3, and alpha installed 3 live.
    await waitForLine(launcher, /"version":3,"previousVersion":2[^\n]*"msg":"policy updated"/, 5_000);
    await waitForLine(
      launcher,
      /"version":3,"previousEpoch":"[^"]*","previousVersion":\d+[^\n]*"msg":"inbound policy updated"/,
      5_000,
    );
    // The refusal is a decision event in alpha's log, with the version that decided it.
    await waitForLine(
      launcher,
      /"event":"decision"[^\n]*"caller":"spiffe:\/\/policy\.local\/svc\/beta"[^\n]*"policyEpoch":"[A-Za-z0-9_-]+","policyVersion":3/,
      5_000,
    );
    t.diagnostic(`grant took ${granted.ms} ms to reach alpha; revocation took ${revoked.ms} ms`);
  });

  test('an edit outside the policy is no new version; a broken manifest keeps the last good policy', async () => {
    const reloads = () =>
      launcher
        .stdout()
        .split('\n')
        .filter((l) => l.includes('policy unchanged')).length;
    const before = reloads();
    write({ grants: ['/b'], rate: '999/min per ip' });
    const deadline = Date.now() + BOUND_MS;
    while (reloads() === before && Date.now() < deadline) await delay(50);
    assert.ok(reloads() > before, 'the control plane reloaded and found the policy unchanged');

    writeFileSync(join(dir, 'rampart.yaml'), `${readFileSync(join(dir, 'rampart.yaml'), 'utf8')}colour: red\n`);
    await waitForLine(launcher, /manifest refused: keeping the last good policy/, BOUND_MS);
    await delay(4 * REFRESH_MS);
    assert.equal((await tryPath('b')).status, 200);
    assert.equal((await tryPath('a')).status, 403);
    assert.ok(!/"version":4[^\n]*"msg":"policy updated"/.test(launcher.stdout()), 'no version 4');
  });
});
