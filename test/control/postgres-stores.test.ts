/**
 * The control plane's durable stores in PostgreSQL, chosen by the manifest (`control.store: { postgres:
 * <url> }`), under `rampart start` with every process under the permission model, on a fresh database
 * made for this run and dropped after it:
 *
 * - the CA's and the gateway's events arrive in the PostgreSQL audit log (schema `rampart_audit`), and
 *   `rampart audit verify --postgres <url>` passes on the running log;
 * - a secret set with `rampart secrets` while the system runs (the CLI asks the control plane, which
 *   writes the store the manifest chose) is read by the service granted it, and refused to one that is
 *   not;
 * - neither `audit.db` nor `secrets.db` appears in the control plane's data directory;
 * - the password in the URL appears in no output of any process and in no file the system wrote.
 *
 * Skipped with the reason when PostgreSQL is not reachable (a failure under CI=true). A second test
 * needs no server: with the database unreachable the control plane cannot open its audit log, the
 * launcher gives up on it and says why, and the password is not in what it prints.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { postgresDatabase } from '../audit/helpers.ts';
import { startTestIssuer } from '../helpers/issuer.ts';
import { freePort, pgrep, spawnTracked, type Tracked, waitForLine } from '../helpers/processes.ts';
import { type LoggedEvent, queryAuditLog, runRampart, waitForAuditEvent } from '../helpers/rampart-cli.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const AUDIENCE = 'https://api.test.local';

/** A service that reads `test-secret` and answers its version and digest, never the value. */
const readerSource = (route: string) => `import { createHash } from 'node:crypto';
import { service } from 'rampart/sdk';

const svc = service({ secrets: { ttlMs: 300 } });
svc.app.get('${route}', async (_req, reply) => {
  try {
    const secret = await svc.secrets.get('test-secret');
    const sha256 = createHash('sha256').update(secret.value).digest('hex');
    secret.value.fill(0);
    return { version: secret.version, sha256 };
  } catch (err) {
    return reply.status(200).send({ error: err.code, status: err.status });
  }
});
await svc.start();
`;

const manifest = (gatewayPort: number, issuer: { issuer: string; jwksUri: string }, url: string) => `version: 1
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: ${gatewayPort} }
  tls: off
  trustedProxies: []
  rateLimit: { store: memory }
identity:
  external: { issuer: "${issuer.issuer}", jwksUri: "${issuer.jwksUri}" }
  audience: ${AUDIENCE}
control:
  store: { postgres: "${url}" }
secrets:
  test-secret: { description: the PostgreSQL store test's secret }
services:
  reader:
    run: services/reader.ts
    routes: [{ id: reader-read, path: /reader/read, methods: [GET], auth: none }]
    secrets: [test-secret]
  outsider:
    run: services/outsider.ts
    routes: [{ id: outsider-read, path: /outsider/read, methods: [GET], auth: none }]
`;

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(path);
    return entry.isFile() ? [path] : [];
  });
}

test('control.store: postgres under rampart start: audit log and secrets in PostgreSQL', {
  timeout: 180_000,
}, async (t) => {
  const database = await postgresDatabase(t);
  if (database === null) return;
  const target = new URL(database);
  // A password in the URL, to prove it is never printed: the server's own when it needs one, else a
  // marker (a server that trusts loopback connections never asks for it).
  if (target.password === '') target.password = `pw-${randomBytes(9).toString('hex')}`;
  const password = decodeURIComponent(target.password);
  const url = target.href;

  const issuer = await startTestIssuer(AUDIENCE);
  t.after(() => issuer.close());
  const gatewayPort = await freePort();
  const base = `http://127.0.0.1:${gatewayPort}`;
  const dir = join(root, 'test', '.scratch', `control-postgres-${process.pid}-${Date.now()}`);
  const controlDir = join(dir, '.rampart', 'control');
  mkdirSync(join(dir, 'services'), { recursive: true });
  writeFileSync(join(dir, 'services', 'reader.ts'), readerSource('/reader/read'));
  writeFileSync(join(dir, 'services', 'outsider.ts'), readerSource('/outsider/read'));
  writeFileSync(join(dir, 'rampart.yaml'), manifest(gatewayPort, issuer, url));

  const cleanups: (() => unknown)[] = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };
  const outputs: string[] = [];
  let launcher: Tracked | undefined;
  t.after(async () => {
    writeFileSync(`${dir}.log`, `${launcher?.stdout()}\n--- stderr ---\n${launcher?.stderr()}`);
    for (const fn of cleanups.reverse()) await fn();
    for (const pid of await pgrep(dir)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  launcher = spawnTracked(
    ctx,
    process.execPath,
    [join(root, 'bin', 'rampart.js'), 'start', join(dir, 'rampart.yaml'), '--log-format', 'json'],
    { cwd: root, env: { ...process.env, NO_COLOR: '1' } },
  );
  await waitForLine(launcher, /"msg":"ready"/, 120_000);
  const ready = launcher
    .stdout()
    .split('\n')
    .find((line) => line.includes('"msg":"control plane ready"'));
  assert.ok(ready, 'the control plane logged that it is ready');
  assert.equal((JSON.parse(ready) as { store?: string }).store, 'postgres');

  const logged = () => queryAuditLog(['--postgres', url], dir, outputs);
  const waitForEvent = (what: string, match: (e: LoggedEvent) => boolean) => waitForAuditEvent(logged, what, match);
  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200, path);
    return (await res.json()) as { version?: number; sha256?: string; error?: string; status?: number };
  };

  await t.test('CA and gateway events arrive in the PostgreSQL log; verify --postgres passes', async () => {
    const unrouted = await fetch(`${base}/nowhere`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(unrouted.status, 404);
    await unrouted.body?.cancel();
    const refused = await waitForEvent(
      'gateway refusal of /nowhere',
      (e) => e.component === 'gateway' && e.resource === '/nowhere' && e.decision === 'deny',
    );
    assert.equal(refused.reporter, 'spiffe://test.local/svc/gateway');
    const issued = (await logged()).filter((e) => e.component === 'ca' && e.action === 'svid.issue');
    for (const name of ['gateway', 'reader', 'outsider']) {
      assert.ok(
        issued.some((e) => e.resource === `spiffe://test.local/svc/${name}`),
        `an SVID issuance for ${name} is logged`,
      );
    }
    assert.ok(issued.every((e) => e.reporter === 'spiffe://test.local/svc/control'));

    const verify = await runRampart(['audit', 'verify', '--postgres', url], dir);
    outputs.push(verify.stdout, verify.stderr);
    assert.equal(verify.code, 0, `${verify.stdout}\n${verify.stderr}`);
    // The log is the run's database's, in its own schema beside the secrets store's.
    const inDatabase = new pg.Client({ connectionString: url });
    await inDatabase.connect();
    try {
      const schemas = await inDatabase.query<{ nspname: string }>(
        "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname LIKE 'rampart_%' ORDER BY nspname",
      );
      assert.deepEqual(
        schemas.rows.map((r) => r.nspname),
        ['rampart_audit', 'rampart_secrets'],
      );
    } finally {
      await inDatabase.end();
    }
  });

  await t.test('a secret set with the CLI while the system runs is read by the granted service only', async () => {
    assert.deepEqual(await get('/reader/read'), { error: 'SEC_ERR_NOT_FOUND', status: 404 });
    const value = Buffer.from(`pg-secret-${randomBytes(24).toString('hex')}`);
    const set = await runRampart(['secrets', 'set', 'test-secret', '--raw', '--data-dir', controlDir], dir, value);
    outputs.push(set.stdout, set.stderr);
    assert.equal(set.code, 0, set.stderr);
    const digest = createHash('sha256').update(value).digest('hex');
    const deadline = Date.now() + 10_000;
    let seen = await get('/reader/read');
    while (seen.version === undefined && Date.now() < deadline) {
      await delay(200);
      seen = await get('/reader/read');
    }
    assert.deepEqual(seen, { version: 1, sha256: digest });
    assert.deepEqual(await get('/outsider/read'), { error: 'SEC_ERR_FORBIDDEN', status: 403 });

    const inDatabase = new pg.Client({ connectionString: url });
    await inDatabase.connect();
    try {
      const versions = await inDatabase.query('SELECT 1 FROM rampart_secrets.versions');
      assert.equal(versions.rowCount, 1, 'the version is in the PostgreSQL store');
    } finally {
      await inDatabase.end();
    }
    await waitForEvent(
      'the reader’s secret read',
      (e) =>
        e.action === 'secret.read' && e.decision === 'allow' && e.actor?.spiffeId === 'spiffe://test.local/svc/reader',
    );
  });

  await t.test('no SQLite store in the data directory; the password is printed and written nowhere', async () => {
    assert.ok(existsSync(join(controlDir, 'ca.db')), 'the CA stays in the data directory');
    for (const file of ['audit.db', 'secrets.db']) {
      assert.ok(!existsSync(join(controlDir, file)), `${file} was not created`);
    }
    const printed = [launcher.stdout(), launcher.stderr(), ...outputs].join('\n');
    assert.ok(!printed.includes(password), 'the password is in some output');
    for (const file of filesUnder(join(dir, '.rampart'))) {
      assert.ok(!readFileSync(file).includes(password), `the password is in ${file}`);
    }
  });
});

test('control.store: postgres unreachable: the launcher gives up with the code, never the password', {
  timeout: 120_000,
}, async (t) => {
  const issuer = await startTestIssuer(AUDIENCE);
  t.after(() => issuer.close());
  const password = `pw-${randomBytes(9).toString('hex')}`;
  // A loopback port nothing listens on.
  const url = `postgres://rampart:${password}@127.0.0.1:${await freePort()}/rampart`;
  const dir = join(root, 'test', '.scratch', `control-postgres-down-${process.pid}-${Date.now()}`);
  mkdirSync(join(dir, 'services'), { recursive: true });
  writeFileSync(join(dir, 'services', 'reader.ts'), readerSource('/reader/read'));
  writeFileSync(join(dir, 'services', 'outsider.ts'), readerSource('/outsider/read'));
  writeFileSync(join(dir, 'rampart.yaml'), manifest(await freePort(), issuer, url));
  const cleanups: (() => unknown)[] = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };
  t.after(async () => {
    for (const fn of cleanups.reverse()) await fn();
    for (const pid of await pgrep(dir)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const launcher = spawnTracked(
    ctx,
    process.execPath,
    [join(root, 'bin', 'rampart.js'), 'start', join(dir, 'rampart.yaml'), '--log-format', 'json'],
    { cwd: root, env: { ...process.env, NO_COLOR: '1' } },
  );
  const status = await launcher.exited;
  const printed = `${launcher.stdout()}\n${launcher.stderr()}`;
  assert.notEqual(status.code, 0, printed);
  assert.match(printed, /AUDIT_ERR_STORAGE/, 'the reason is printed');
  assert.ok(!printed.includes(password), 'the password is in the launcher output');
  const controlDir = join(dir, '.rampart', 'control');
  for (const file of ['audit.db', 'secrets.db']) {
    assert.ok(!existsSync(join(controlDir, file)), `${file} was created: the control plane fell back to SQLite`);
  }
  for (const file of existsSync(join(dir, '.rampart')) ? filesUnder(join(dir, '.rampart')) : []) {
    assert.ok(!readFileSync(file).includes(password), `the password is in ${file}`);
  }
});
