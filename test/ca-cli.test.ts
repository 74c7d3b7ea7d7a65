/**
 * `rampart ca status|rotate`: against a data directory with no control plane (read-only status, rotation
 * with the KEK), against a project running under `rampart start` (through the control plane's API with
 * the operator credential), and the cases in between: a stale endpoint file, a live process that does
 * not answer (the database is never touched), a wrong or missing credential (401, nothing rotated).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCa } from '../src/cli/ca.ts';
import { CONTROL_API_ERRORS, type ControlTarget, controlRequest } from '../src/control/api/index.ts';
import { OPERATOR_FILES, readControlEndpoint, readOperatorCredential } from '../src/control/api/operator-access.ts';
import {
  CA_ERRORS,
  CA_WARNINGS,
  type CaStatus,
  openCertificateAuthority,
  type RotationResult,
  readCaStatus,
} from '../src/control/ca/index.ts';
import { makeCsr } from '../src/control/ca/testing.ts';
import { isRampartError } from '../src/core/errors.ts';
import { createDevKek, KEK_ENV, loadKek } from '../src/core/kek.ts';
import { freePort, spawnTracked, type Tracked, waitForLine } from './helpers/processes.ts';
import { makeProject } from './launcher/project.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

class Capture extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: string, callback: () => void) {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
  text() {
    return Buffer.concat(this.chunks).toString();
  }
}

async function ca(cwd: string, args: string[], env: Record<string, string> = {}) {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runCa(args, { stdout, stderr, cwd, env });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** A control plane's data directory as `rampart start` leaves it (CA database, dev KEK), nothing running. */
async function stoppedSystem(
  t: import('node:test').TestContext,
  options: { caLifetimeMs?: number; svidTtlMs?: number } = {},
) {
  const cwd = mkdtempSync(join(tmpdir(), 'rampart-ca-cli-'));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  const dataDir = join(cwd, '.rampart', 'control');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  createDevKek(join(dataDir, 'kek.key')).kek.destroy();
  const kek = loadKek({ file: join(dataDir, 'kek.key') });
  const authority = await openCertificateAuthority({
    trustDomain: 'shop.local',
    databasePath: join(dataDir, 'ca.db'),
    kek,
    signingThreads: 0,
    ...options,
  });
  // A workload's SVID: a live holder that has not acknowledged a newer bundle.
  await authority.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
  writeFileSync(join(dataDir, 'bundle.pem'), authority.bundle().pem);
  authority.close();
  kek.destroy();
  return { cwd, dataDir, database: join(dataDir, 'ca.db') };
}

const digest = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('rampart ca with no control plane running', () => {
  test('status: a table, the schedule, no warnings; --json is the CaStatus', async (t) => {
    const { cwd } = await stoppedSystem(t);
    const r = await ca(cwd, ['status']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /certificate authority of spiffe:\/\/shop\.local/);
    assert.match(r.stdout, /no control plane running/);
    assert.match(r.stdout, /SLOT\s+GEN\s+STATE\s+NOT BEFORE\s+NOT AFTER\s+ACTIVATE AT\s+LIVE SVIDS/);
    assert.match(r.stdout, /^A\s+1\s+active\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+\d{4}-/m);
    assert.match(r.stdout, /schedule of generation 1: successor prepared at \d{4}-.*signing at \d{4}-/);
    assert.match(r.stdout, /no warnings/);

    const json = await ca(cwd, ['status', '--json']);
    assert.equal(json.code, 0);
    const status = JSON.parse(json.stdout) as CaStatus;
    assert.equal(status.trustDomain, 'shop.local');
    assert.deepEqual(
      status.authorities.map((a) => [a.slot, a.generation, a.state]),
      [['A', 1, 'active']],
    );
    assert.deepEqual(status.warnings, []);
  });

  test('status reads without writing and without the KEK', async (t) => {
    const { cwd, dataDir, database } = await stoppedSystem(t);
    rmSync(join(dataDir, 'kek.key'));
    const before = digest(database);
    const r = await ca(cwd, ['status']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(digest(database), before);
  });

  test('status exits 1 on a warning that means an outage is coming, and names its code', async (t) => {
    // A CA of 1 h: it expires within the anchor warning (two default SVID lifetimes).
    const { cwd } = await stoppedSystem(t, { caLifetimeMs: 3_600_000, svidTtlMs: 600_000 });
    const r = await ca(cwd, ['status']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /WARNINGS \(\d; !! = an outage is coming\):/);
    assert.match(r.stdout, new RegExp(`!! ${CA_WARNINGS.anchorExpiring}: `));
    const json = await ca(cwd, ['status', '--json']);
    assert.equal(json.code, 1);
    assert.ok((JSON.parse(json.stdout) as CaStatus).warnings.some((w) => w.code === CA_WARNINGS.anchorExpiring));
  });

  test('rotate publishes generation 2; --immediate makes it sign; bundle.pem follows', async (t) => {
    const { cwd, dataDir, database } = await stoppedSystem(t);
    let r = await ca(cwd, ['rotate']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /rotated: generation 2 \(slot B\) is in the trust bundle, sequence 2/);
    assert.match(r.stdout, /it signs by \d{4}-\d\d-\d\dT[\d:]+Z \(in \d+m\)/);
    let status = readCaStatus({ databasePath: database });
    assert.deepEqual(
      status.authorities.map((a) => [a.generation, a.state, a.forced]),
      [
        [1, 'active', false],
        [2, 'prepared', true],
      ],
    );
    const shown = await ca(cwd, ['status']);
    assert.match(shown.stdout, /^B\s+2\s+prepared \(forced\)\s+\S+\s+\S+\s+\d{4}-\S+\s+0\s/m);
    assert.match(shown.stdout, /generation 2 is prepared \(forced rotation\): it signs by \d{4}-/);
    assert.match(shown.stdout, new RegExp(` ! ${CA_WARNINGS.bundleNotDistributed}: `));
    assert.equal(shown.code, 0, 'a rotation in progress is no outage');
    const bundle = readFileSync(join(dataDir, 'bundle.pem'), 'utf8');
    assert.equal(bundle.match(/BEGIN CERTIFICATE/g)?.length, 2);

    r = await ca(cwd, ['rotate', '--immediate', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as RotationResult;
    assert.equal(result.generation, 2);
    assert.equal(result.activated, true);
    status = readCaStatus({ databasePath: database });
    assert.equal(status.authorities.find((a) => a.state === 'active')?.generation, 2);
  });

  test('rotate with the wrong KEK is refused (CA_ERR_SEALED) and rotates nothing', async (t) => {
    const { cwd, database } = await stoppedSystem(t);
    const before = readCaStatus({ databasePath: database });
    const r = await ca(cwd, ['rotate'], { [KEK_ENV]: randomBytes(32).toString('base64') });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`\\[${CA_ERRORS.sealed}\\]`));
    assert.deepEqual(readCaStatus({ databasePath: database, now: before.now }), before);
  });

  test('no CA database: exit 1, and none is created', async (t) => {
    const cwd = mkdtempSync(join(tmpdir(), 'rampart-ca-cli-'));
    t.after(() => rmSync(cwd, { recursive: true, force: true }));
    for (const args of [['status'], ['rotate']]) {
      const r = await ca(cwd, args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /no certificate authority in /);
    }
    assert.throws(() => statSync(join(cwd, '.rampart')), { code: 'ENOENT' });
  });

  test('a stale endpoint file (its process is gone) does not stop the CLI', async (t) => {
    const { cwd, dataDir } = await stoppedSystem(t);
    const gone = spawnTracked(t, process.execPath, ['-e', '0']);
    await gone.exited;
    writeFileSync(
      join(dataDir, OPERATOR_FILES.endpoint),
      JSON.stringify({ pid: gone.pid, port: 1, trustDomain: 'shop.local' }),
    );
    const r = await ca(cwd, ['rotate']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /generation 2/);
  });

  test('a live process that does not answer: exit 1, the database is not touched', async (t) => {
    const { cwd, dataDir, database } = await stoppedSystem(t);
    // This test's own pid: certainly alive, certainly no control plane on that port.
    writeFileSync(
      join(dataDir, OPERATOR_FILES.endpoint),
      JSON.stringify({ pid: process.pid, port: await freePort(), trustDomain: 'shop.local' }),
    );
    writeFileSync(join(dataDir, OPERATOR_FILES.credential), `${'k'.repeat(43)}\n`, { mode: 0o600 });
    const before = digest(database);
    for (const args of [['status'], ['rotate'], ['rotate', '--immediate']]) {
      const r = await ca(cwd, args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, new RegExp(`does not answer on port \\d+ \\[${CONTROL_API_ERRORS.unavailable}\\]`));
    }
    assert.equal(digest(database), before);

    // Without its credential or bundle, it is still starting: refused before any request.
    rmSync(join(dataDir, OPERATOR_FILES.credential));
    const r = await ca(cwd, ['rotate']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /has not finished starting/);
    assert.equal(digest(database), before);

    // An endpoint file that is not the control plane's: refused, not read as "nothing runs".
    writeFileSync(join(dataDir, OPERATOR_FILES.endpoint), '{"pid":"1"}');
    const bad = await ca(cwd, ['rotate']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /cannot tell whether a control plane runs/);
    assert.equal(digest(database), before);
  });
});

describe('rampart ca usage', () => {
  test('usage errors exit 2 with the usage; --help exits 0', async () => {
    const cwd = tmpdir();
    const rows: string[][] = [
      [],
      ['stat'],
      ['status', 'extra'],
      ['status', '--immediate'],
      ['status', '--key-file', 'k'],
      ['rotate', '--force'],
      ['rotate', '--data-dir'],
      ['rotate', '--immediate=yes'],
      ['status', '--json', 'x'],
      ['\u001b[31mred'],
    ];
    for (const args of rows) {
      const r = await ca(cwd, args);
      assert.equal(r.code, 2, JSON.stringify(args));
      assert.match(r.stderr, /Usage: rampart ca <status\|rotate>/, JSON.stringify(args));
      assert.ok(!r.stderr.includes('\u001b'), 'control characters are shown escaped');
    }
    for (const args of [['--help'], ['help'], ['status', '-h']]) {
      const r = await ca(cwd, args);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /Exit codes: 0 ok; 1 failed, or \(status\) a warning/);
      assert.match(r.stdout, new RegExp(CA_WARNINGS.anchorExpiring));
    }
  });
});

describe('rampart ca against a running system (rampart start)', { timeout: 150_000 }, () => {
  const cleanups: (() => unknown)[] = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };
  let dir: string;
  let dataDir: string;
  let launcher: Tracked;

  before(async () => {
    dir = makeProject(ctx);
    dataDir = join(dir, '.rampart', 'control');
    writeFileSync(
      join(dir, 'services', 'hello.ts'),
      "import { service } from 'rampart/sdk';\nconst svc = service();\nsvc.app.get('/hello', async () => ({ hello: true }));\nawait svc.start();\n",
    );
    writeFileSync(
      join(dir, 'rampart.yaml'),
      [
        'version: 1',
        'trustDomain: shop.local',
        'gateway:',
        `  listen: { host: 127.0.0.1, port: ${await freePort()} }`,
        '  admin: { port: 0 }',
        '  tls: off',
        '  workers: 1',
        'identity:',
        '  external: { issuer: https://idp.example.com }',
        '  audience: https://api.shop.local',
        'services:',
        '  hello:',
        '    run: services/hello.ts',
        '    routes:',
        '      - { path: /hello, methods: [GET], auth: none }',
        '',
      ].join('\n'),
    );
    launcher = spawnTracked(
      ctx,
      process.execPath,
      [join(root, 'bin', 'rampart.js'), 'start', join(dir, 'rampart.yaml'), '--log-format', 'json'],
      { cwd: dir, env: { ...process.env, NO_COLOR: '1' } },
    );
    await waitForLine(launcher, /"msg":"ready"/, 90_000);
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  const target = (): ControlTarget => {
    const endpoint = readControlEndpoint(dataDir)!;
    return {
      url: `https://127.0.0.1:${endpoint.port}`,
      bundle: readFileSync(join(dataDir, 'bundle.pem'), 'utf8'),
      trustDomain: 'shop.local',
    };
  };

  test('the control plane wrote its endpoint and a 0600 operator credential', () => {
    const endpoint = readControlEndpoint(dataDir);
    assert.ok(endpoint);
    assert.equal(endpoint.trustDomain, 'shop.local');
    assert.equal(statSync(join(dataDir, OPERATOR_FILES.credential)).mode & 0o777, 0o600);
    assert.match(readOperatorCredential(dataDir) ?? '', /^[A-Za-z0-9_-]{43}$/);
  });

  test('status goes through the API (default data directory from the project root)', async () => {
    const r = await ca(dir, ['status']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /control plane running \(pid \d+, port \d+\)/);
    assert.match(r.stdout, /^A\s+1\s+active\s/m);
    const json = JSON.parse((await ca(dir, ['status', '--json'])).stdout) as CaStatus;
    // The control plane's own server certificate, the gateway's and the service's SVIDs.
    assert.ok((json.authorities[0]?.liveSvids ?? 0) >= 3, JSON.stringify(json.authorities));
  });

  test('a wrong or missing operator credential is 401 and rotates nothing', async () => {
    const before = (JSON.parse((await ca(dir, ['status', '--json'])).stdout) as CaStatus).bundleSequence;
    for (const bearer of [undefined, 'w'.repeat(43), readOperatorCredential(dataDir)!.slice(0, 42)]) {
      await assert.rejects(
        controlRequest(target(), { method: 'POST', path: '/v1/ca/rotate', bearer, body: { immediate: true } }),
        (err) => isRampartError(err, CONTROL_API_ERRORS.unauthorized),
      );
    }
    // The CLI with a credential file that is not the control plane's.
    const file = join(dataDir, OPERATOR_FILES.credential);
    renameSync(file, `${file}.kept`);
    try {
      writeFileSync(file, `${'w'.repeat(43)}\n`, { mode: 0o600 });
      const r = await ca(dir, ['rotate', '--immediate']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`\\[${CONTROL_API_ERRORS.unauthorized}\\]`));
    } finally {
      renameSync(`${file}.kept`, file);
    }
    const after = JSON.parse((await ca(dir, ['status', '--json'])).stdout) as CaStatus;
    assert.equal(after.bundleSequence, before, 'nothing rotated');
    assert.equal(after.authorities.length, 1);
  });

  test('rotate through the API: published at once in bundle.pem; --immediate makes it sign', async () => {
    let r = await ca(dir, ['rotate']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /rotated: generation 2 \(slot B\) is in the trust bundle/);
    assert.match(r.stdout, /the control plane republished/);
    // Written before the API answered, not at the next tick.
    const pem = readFileSync(join(dataDir, 'bundle.pem'), 'utf8');
    assert.equal(pem.match(/BEGIN CERTIFICATE/g)?.length, 2);

    r = await ca(dir, ['rotate', '--immediate']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /it signs now: new SVIDs come from generation 2/);
    const status = JSON.parse((await ca(dir, ['status', '--json'])).stdout) as CaStatus;
    assert.equal(status.authorities.find((a) => a.state === 'active')?.generation, 2);
    assert.equal(status.authorities.find((a) => a.generation === 1)?.state, 'retiring');

    // The API still answers over TLS trusting the republished bundle, and its SPIFFE ID is checked.
    const again = await controlRequest<CaStatus>(target(), {
      method: 'POST',
      path: '/v1/ca/status',
      bearer: readOperatorCredential(dataDir)!,
      body: {},
    });
    assert.equal(again.bundleSequence, status.bundleSequence);
    for (const cert of pem.split(/(?=-----BEGIN CERTIFICATE-----)/)) {
      assert.ok(new X509Certificate(cert).ca);
    }
  });

  test('while it runs, --key-file is refused: the control plane holds the key', async () => {
    const r = await ca(dir, ['rotate', '--key-file', join(dataDir, 'kek.key')]);
    assert.equal(r.code, 2);
  });

  test('after shutdown the files are gone and the CLI reads the database itself', async () => {
    await launcher.stop(15_000);
    assert.equal(readControlEndpoint(dataDir), null);
    assert.equal(readOperatorCredential(dataDir), null);
    const r = await ca(dir, ['status']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no control plane running/);
    assert.match(r.stdout, /^B\s+2\s+active/m);
  });
});
