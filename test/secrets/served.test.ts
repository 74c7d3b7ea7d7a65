/**
 * Secrets served to services, end to end under `rampart start`: a project with a service granted a
 * secret (`reader`) and one that is not (`outsider`). The secret is set with the CLI before the start
 * (the CLI opens the store and the audit log itself) and rotated with it while the control plane runs
 * (the CLI asks the control plane over its operator routes, and the control plane records the command);
 * the reader sees each version through `svc.secrets.get` over mTLS, the outsider gets 403, and both are
 * in the audit log. A wrong or missing operator credential is 401 and changes nothing. At the end the
 * log verifies, and the test plaintexts are searched, byte for byte and in every common encoding, in
 * every file the system wrote (control plane, services, gateway data directories) and in every line any
 * process printed, the CLI's included (but for the one `get --reveal`): they appear nowhere.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { runAudit } from '../../src/cli/audit.ts';
import { runCa } from '../../src/cli/ca.ts';
import { runKek } from '../../src/cli/kek.ts';
import { CONTROL_API_ERRORS, controlRequest } from '../../src/control/api/index.ts';
import { readControlEndpoint, readOperatorCredential } from '../../src/control/api/operator-access.ts';
import { OPERATOR_SECRETS_ROUTES, operatorSecretsPath } from '../../src/control/api/operator-secrets-routes.ts';
import { openAuditDatabase } from '../../src/control/audit/database.ts';
import { queryEvents } from '../../src/control/audit/query.ts';
import type { AuditEvent } from '../../src/core/audit-event.ts';
import { isRampartError } from '../../src/core/errors.ts';
import { startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';
import { freePort, httpGet, pgrep, spawnTracked, type Tracked, waitForLine } from '../helpers/processes.ts';
import { leakForms } from './fixtures.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const AUDIENCE = 'https://api.test.local';

/** A service that reads `test-secret`, records the version it saw and answers it with a digest, never the value. */
const readerSource = (route: string) => `import { createHash } from 'node:crypto';
import { service } from 'rampart/sdk';

const svc = service({ secrets: { ttlMs: 300 } });
const db = svc.database();
db.exec('CREATE TABLE IF NOT EXISTS seen (version INTEGER NOT NULL)');
svc.app.get('${route}', async (_req, reply) => {
  try {
    const secret = await svc.secrets.get('test-secret');
    db.prepare('INSERT INTO seen (version) VALUES (?)').run(secret.version);
    const sha256 = createHash('sha256').update(secret.value).digest('hex');
    secret.value.fill(0);
    return { version: secret.version, sha256 };
  } catch (err) {
    return reply.status(200).send({ error: err.code, status: err.status });
  }
});
await svc.start();
`;

function manifest(gatewayPort: number, issuer: TestIssuer): string {
  return `version: 1
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: ${gatewayPort} }
  tls: off
  trustedProxies: []
  rateLimit: { store: memory }
identity:
  external: { issuer: "${issuer.issuer}", jwksUri: "${issuer.jwksUri}" }
  audience: ${AUDIENCE}
secrets:
  test-secret: { description: end-to-end test secret }
  payment-provider-key: { description: the example shop's card processor key }
services:
  payments:
    run: services/payments.ts
    routes: [{ id: charges, path: /charges, methods: [POST], auth: { scopes: [orders] } }]
    secrets: [payment-provider-key]
  reader:
    run: services/reader.ts
    routes: [{ id: reader-read, path: /reader/read, methods: [GET], auth: none }]
    secrets: [test-secret]
  outsider:
    run: services/outsider.ts
    routes: [{ id: outsider-read, path: /outsider/read, methods: [GET], auth: none }]
`;
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(path);
    return entry.isFile() ? [path] : [];
  });
}

describe('secrets served over mTLS under rampart start', { timeout: 120_000 }, () => {
  let issuer: TestIssuer;
  let dir: string;
  let base: string;
  let launcher: Tracked;
  const cli: Tracked[] = [];
  const cleanups: (() => unknown)[] = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };
  // Printable, as a real API key is; random so that no other byte sequence could match by chance.
  const first = Buffer.from(`e2e-first-${randomBytes(24).toString('hex')}`);
  const second = Buffer.from(`e2e-second-${randomBytes(24).toString('hex')}`);
  const providerKey = Buffer.from(`sk_e2e_${randomBytes(24).toString('hex')}`);
  const controlDir = () => join(dir, '.rampart', 'control');

  /**
   * `rampart secrets <args>` with `stdin`, as an operator runs it; resolves when it has exited with
   * `code` (default 0). Its output joins the plaintext search unless `revealed` (the one `get --reveal`).
   */
  const secretsCli = async (args: string[], stdin?: Buffer, options: { code?: number; revealed?: boolean } = {}) => {
    const run = spawnTracked(
      ctx,
      process.execPath,
      [join(root, 'bin', 'rampart.js'), 'secrets', ...args, '--data-dir', controlDir()],
      { cwd: root, env: { ...process.env, NO_COLOR: '1' } },
    );
    if (!options.revealed) cli.push(run);
    run.child.stdin?.end(stdin);
    const status = await run.exited;
    assert.equal(status.code, options.code ?? 0, `rampart secrets ${args.join(' ')}: ${run.stderr()}`);
    return run;
  };

  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200, path);
    return (await res.json()) as { version?: number; sha256?: string; error?: string; status?: number };
  };

  before(async () => {
    issuer = await startTestIssuer(AUDIENCE);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    dir = join(root, 'test', '.scratch', `secrets-served-${process.pid}-${Date.now()}`);
    mkdirSync(join(dir, 'services'), { recursive: true });
    writeFileSync(join(dir, 'services', 'reader.ts'), readerSource('/reader/read'));
    writeFileSync(join(dir, 'services', 'outsider.ts'), readerSource('/outsider/read'));
    copyFileSync(join(root, 'examples', 'shop', 'services', 'payments.ts'), join(dir, 'services', 'payments.ts'));
    writeFileSync(join(dir, 'rampart.yaml'), manifest(port, issuer));
    // Set before the first start: the CLI creates the development KEK the launcher then reuses.
    await secretsCli(['set', 'test-secret', '--create-dev-key', '--raw'], first);
    launcher = spawnTracked(
      ctx,
      process.execPath,
      [join(root, 'bin', 'rampart.js'), 'start', join(dir, 'rampart.yaml'), '--log-format', 'json'],
      { cwd: root, env: { ...process.env, NO_COLOR: '1' } },
    );
    await waitForLine(launcher, /"msg":"ready"/, 60_000);
  });

  after(async () => {
    writeFileSync(`${dir}.log`, `${launcher?.stdout()}\n--- stderr ---\n${launcher?.stderr()}`);
    for (const fn of cleanups.reverse()) await fn();
    for (const pid of await pgrep(dir)) process.kill(pid, 'SIGKILL');
    await issuer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const digest = (value: Buffer) => createHash('sha256').update(value).digest('hex');
  const CONTROL = 'spiffe://test.local/svc/control';
  /** The audit log's events, read while the control plane writes it (WAL), as `rampart audit query` does. */
  const auditTrail = (): AuditEvent[] => {
    const db = openAuditDatabase(join(controlDir(), 'audit.db'), { readOnly: true });
    try {
      return queryEvents(db, { component: 'secrets', limit: 10_000 }).map((r) => r.event!);
    } finally {
      db.close();
    }
  };

  test('the granted service reads the secret through svc.secrets.get over mTLS', async () => {
    assert.deepEqual(await get('/reader/read'), { version: 1, sha256: digest(first) });
    // The read is on the service's own metrics.
    const ready = launcher
      .stdout()
      .split('\n')
      .find((line) => line.includes('"msg":"ready"'))!;
    const admin = (JSON.parse(ready) as { admin: Record<string, string> }).admin;
    const metrics = await httpGet(`${admin['reader']}/metrics`);
    assert.match(metrics.body, /^rampart_service_secret_reads_total\{[^}]*result="ok"[^}]*\} [1-9]/m);
    assert.ok(
      auditTrail().some(
        (e) =>
          e.action === 'secret.read' &&
          e.decision === 'allow' &&
          e.actor?.spiffeId === 'spiffe://test.local/svc/reader' &&
          e.reporter === CONTROL,
      ),
    );
  });

  test('a service not granted the secret gets 403 SEC_ERR_FORBIDDEN, and the refusal is audited', async () => {
    assert.deepEqual(await get('/outsider/read'), { error: 'SEC_ERR_FORBIDDEN', status: 403 });
    assert.ok(
      auditTrail().some(
        (e) =>
          e.action === 'secret.read' &&
          e.decision === 'deny' &&
          e.reason === 'SEC_ERR_FORBIDDEN' &&
          e.actor?.spiffeId === 'spiffe://test.local/svc/outsider' &&
          e.reporter === CONTROL,
      ),
    );
  });

  test('the CLI set before the start recorded its write in the audit log itself (no reporter)', () => {
    const [write] = auditTrail();
    assert.equal(write?.action, 'secret.write');
    assert.equal(write?.actor?.subject, userInfo().username);
    assert.equal(write?.reporter, undefined);
  });

  test('the control plane refuses a read without a client certificate (401)', async () => {
    const ready = launcher
      .stdout()
      .split('\n')
      .find((line) => line.includes('"msg":"control plane ready"'));
    assert.ok(ready, 'the control plane logged its port');
    const { port } = JSON.parse(ready) as { port: number };
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port,
        path: '/v1/secrets/read',
        method: 'POST',
        ca: readFileSync(join(controlDir(), 'bundle.pem'), 'utf8'),
        checkServerIdentity: () => undefined,
        agent: false,
        headers: { 'content-type': 'application/json' },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.end('{"name":"test-secret"}');
    });
    assert.equal(status, 401);
  });

  test("the example's payments answers 503 and logs the command until its key is set, then charges", async () => {
    const token = await issuer.mint({ sub: 'alice', scope: 'orders' });
    const charge = (orderId: number) =>
      fetch(`${base}/charges`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ orderId, amountCents: 1200, currency: 'EUR' }),
        signal: AbortSignal.timeout(10_000),
      });
    const unset = await charge(1);
    assert.equal(unset.status, 503);
    assert.deepEqual(await unset.json(), { error: 'payment_provider_not_configured' });
    await waitForLine(
      launcher,
      /payment-provider-key is not set.*rampart secrets set payment-provider-key --data-dir/,
      5_000,
    );
    await secretsCli(['set', 'payment-provider-key', '--raw'], providerKey);
    const paid = await charge(2);
    assert.equal(paid.status, 201);
    assert.match(((await paid.json()) as { chargeId: string }).chargeId, /^ch_/);
  });

  test('a rotation by the CLI while the control plane runs reaches the service (the cache follows it)', async () => {
    const before = auditTrail().length;
    await secretsCli(['rotate', 'test-secret', '--raw'], second);
    await secretsCli(['promote', 'test-secret']);
    // The control plane performed and recorded them: the local operator as actor, itself as reporter.
    const recorded = auditTrail().slice(before);
    assert.deepEqual(
      recorded.map((e) => `${e.action}:${e.decision}:${e.actor?.subject}:${e.reporter}`),
      [
        `secret.write:allow:${userInfo().username}:${CONTROL}`,
        `secret.promote:allow:${userInfo().username}:${CONTROL}`,
      ],
    );
    const deadline = Date.now() + 10_000;
    let seen = await get('/reader/read');
    while (seen.version !== 2 && Date.now() < deadline) {
      await delay(100);
      seen = await get('/reader/read');
    }
    assert.deepEqual(seen, { version: 2, sha256: digest(second) });
  });

  test('the CLI reads through the control plane while it runs; options it cannot honour are refused', async () => {
    const list = await secretsCli(['list']);
    assert.match(list.stdout(), /^test-secret\s+2\s+1\s+-\s+2\s/m);
    const history = await secretsCli(['history', 'test-secret', '--json']);
    assert.equal((JSON.parse(history.stdout()) as { versions: unknown[] }).versions.length, 2);
    const revealed = await secretsCli(['get', 'test-secret', '--reveal'], undefined, { revealed: true });
    assert.equal(revealed.stdout(), second.toString());
    assert.equal(revealed.stderr(), '');
    const refused = await secretsCli(['list', '--key-file', join(controlDir(), 'kek.key')], undefined, { code: 2 });
    assert.match(refused.stderr(), /--key-file is for working without a running control plane/);
    // The KEK is rotated offline only (rampart kek rotate): the running control plane holds every store.
    let kekStderr = '';
    const kekCode = await runKek(
      ['rotate', '--new-key-file', join(controlDir(), 'kek.key'), '--data-dir', controlDir()],
      {
        stdout: new Writable({ write: (_chunk, _encoding, done) => done() }),
        stderr: new Writable({
          write: (chunk, _encoding, done) => {
            kekStderr += String(chunk);
            done();
          },
        }),
        cwd: root,
        env: {},
      },
    );
    assert.equal(kekCode, 1);
    assert.match(kekStderr, /the control plane \(pid \d+\) holds the stores open under the key in use: stop it/);
    const actions = auditTrail().map((e) => e.action);
    for (const action of ['secret.list', 'secret.history', 'secret.reveal']) assert.ok(actions.includes(action));
  });

  test('a wrong or missing operator credential: 401 from every operator secrets route, nothing changed', async () => {
    const endpoint = readControlEndpoint(controlDir());
    assert.ok(endpoint);
    const target = {
      url: `https://127.0.0.1:${endpoint.port}`,
      bundle: readFileSync(join(controlDir(), 'bundle.pem'), 'utf8'),
      trustDomain: 'test.local',
    };
    const real = readOperatorCredential(controlDir());
    const before = auditTrail().length;
    const body = { name: 'test-secret', value: Buffer.from('intruder').toString('base64') };
    for (const bearer of [undefined, 'w'.repeat(43), `${real!.slice(0, -1)}${real!.endsWith('a') ? 'b' : 'a'}`]) {
      for (const route of Object.values(OPERATOR_SECRETS_ROUTES)) {
        await assert.rejects(
          controlRequest(target, {
            method: 'POST',
            path: operatorSecretsPath(route),
            body,
            ...(bearer ? { bearer } : {}),
          }),
          (err: unknown) => isRampartError(err, CONTROL_API_ERRORS.unauthorized) && err.status === 401,
        );
      }
    }
    assert.equal(auditTrail().length, before, 'no secrets event: nothing was done');
    const history = await secretsCli(['history', 'test-secret', '--json']);
    assert.equal((JSON.parse(history.stdout()) as { secret: { latestVersion: number } }).secret.latestVersion, 2);
  });

  test('rampart ca rotate through the running control plane is recorded with the operator as actor', async () => {
    const out = new PassThrough();
    const code = await runCa(['rotate', '--data-dir', controlDir()], { stdout: out, stderr: out, cwd: dir });
    assert.equal(code, 0, String(out.read() ?? ''));
    const rotations = () => {
      const db = openAuditDatabase(join(controlDir(), 'audit.db'), { readOnly: true });
      try {
        return queryEvents(db, { action: 'ca.rotate' }).map((r) => r.event!);
      } finally {
        db.close();
      }
    };
    const deadline = Date.now() + 5_000;
    while (rotations().length === 0 && Date.now() < deadline) await delay(50);
    const [rotation] = rotations();
    assert.equal(rotation?.actor?.subject, userInfo().username);
    assert.equal(rotation?.reporter, CONTROL);
    assert.equal(rotation?.detail?.['controlPlane'], true);
  });

  test('the plaintexts appear in no data file, log or process output', async () => {
    await launcher.stop(10_000);
    const report = new PassThrough();
    const verified = await runAudit(['verify', '--data', controlDir()], { stdout: report, stderr: report, cwd: dir });
    const text = String(report.read() ?? '');
    assert.equal(verified, 0, text);
    assert.match(text, /verified \d+ entries/);
    const files = filesUnder(join(dir, '.rampart'));
    assert.ok(
      files.some((f) => f.endsWith('secrets.db')),
      'the store was searched',
    );
    assert.ok(
      files.some((f) => f.endsWith('audit.db')),
      'the audit log was searched',
    );
    assert.ok(
      files.some((f) => f.endsWith(join('reader', 'reader.db'))),
      "the reader's database was searched",
    );
    const outputs = [launcher, ...cli].flatMap((p) => [p.stdout(), p.stderr()]);
    assert.ok(outputs.join('').includes('"msg":"ready"'), 'the logs were captured');
    assert.ok(
      cli.some((p) => p.stdout().includes('test-secret')),
      "the CLI's output was captured (it names the secret)",
    );
    const haystacks = [
      ...files.filter((f) => statSync(f).isFile()).map((f) => ({ where: f, bytes: readFileSync(f) })),
      ...outputs.map((text, i) => ({ where: `output ${i}`, bytes: Buffer.from(text) })),
    ];
    for (const plaintext of [first, second, providerKey]) {
      for (const form of leakForms(plaintext)) {
        for (const { where, bytes } of haystacks) {
          assert.equal(bytes.indexOf(form), -1, `${where} holds a form of the plaintext`);
        }
      }
    }
  });
});
