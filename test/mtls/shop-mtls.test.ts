/**
 * The example shop under `rampart start`, seen from inside: every service serves mutual TLS only;
 * `payments` refuses `catalog` even with a valid certificate issued by the system's own CA (the manifest
 * lets only `orders` call `POST /charges`), refuses cleartext, and accepts `orders`; the whole flow
 * through the gateway is test/shop.test.ts.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { createWorkloadKey } from '../../src/control/api/index.ts';
import { type CertificateAuthority, openCertificateAuthority } from '../../src/control/ca/index.ts';
import { type Kek, loadKek } from '../../src/core/kek.ts';
import { startTestIssuer, type TestIssuer } from '../helpers/issuer.ts';
import { freePort, httpGet, pgrep, spawnTracked, type Tracked, waitForLine } from '../helpers/processes.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const AUDIENCE = 'https://api.shop.local';

function post(port: number, path: string, ca: string, credentials: { cert: string; key: string }) {
  return new Promise<{ status: number | null; error: string | null }>((resolve) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      method: 'POST',
      ca,
      ...credentials,
      agent: false,
      checkServerIdentity: () => undefined,
      headers: { 'content-type': 'application/json' },
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: null, error: err.code ?? err.message }));
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, error: null }));
    });
    req.end('{"orderId":"x","amountCents":1}');
  });
}

describe('the shop runs mTLS on every hop', { timeout: 120_000 }, () => {
  let issuer: TestIssuer;
  let dir: string;
  let launcher: Tracked;
  let kek: Kek;
  let ca: CertificateAuthority;
  let paymentsPort: number;
  const cleanups: (() => unknown)[] = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };

  before(async () => {
    issuer = await startTestIssuer(AUDIENCE);
    dir = join(root, 'test', '.scratch', `shop-mtls-${process.pid}-${Date.now()}`);
    mkdirSync(dir, { recursive: true });
    cpSync(join(root, 'examples', 'shop', 'services'), join(dir, 'services'), { recursive: true });
    const doc = parseDocument(readFileSync(join(root, 'examples', 'shop', 'rampart.yaml'), 'utf8'));
    doc.setIn(['gateway', 'listen', 'port'], await freePort());
    doc.set('identity', { external: { issuer: issuer.issuer, jwksUri: issuer.jwksUri }, audience: AUDIENCE });
    writeFileSync(join(dir, 'rampart.yaml'), doc.toString());
    launcher = spawnTracked(
      ctx,
      process.execPath,
      [join(root, 'bin', 'rampart.js'), 'start', join(dir, 'rampart.yaml'), '--log-format', 'json'],
      { cwd: root, env: { ...process.env, NO_COLOR: '1' } },
    );
    await waitForLine(launcher, /"msg":"ready"/, 60_000);
    const listening = launcher
      .stdout()
      .split('\n')
      .filter((line) => line.includes('service listening'))
      .map((line) => JSON.parse(line) as { name?: string; process?: string; port: number });
    const payments = listening.find((l) => (l.process ?? l.name) === 'payments');
    assert.ok(payments, 'payments logged its port');
    paymentsPort = payments.port;
    // A valid certificate for `catalog`, from the system's own CA (its database and dev KEK).
    kek = loadKek({ file: join(dir, '.rampart', 'control', 'kek.key') });
    ca = await openCertificateAuthority({
      trustDomain: 'shop.local',
      databasePath: join(dir, '.rampart', 'control', 'ca.db'),
      kek,
      signingThreads: 0,
    });
  });

  after(async () => {
    writeFileSync(`${dir}.log`, `${launcher.stdout()}\n--- stderr ---\n${launcher.stderr()}`);
    ca?.close();
    kek?.destroy();
    for (const fn of cleanups.reverse()) await fn();
    for (const pid of await pgrep(dir)) process.kill(pid, 'SIGKILL');
    await issuer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const credentialsFor = async (service: string) => {
    const key = await createWorkloadKey();
    const svid = await ca.issue({ csr: key.csrPem, serviceName: service });
    return { cert: svid.certificatePem, key: key.keyPem };
  };

  test('payments called directly by catalog (valid certificate) is refused; by orders, it is served', async () => {
    const bundle = ca.bundle().pem;
    const asCatalog = await post(paymentsPort, '/charges', bundle, await credentialsFor('catalog'));
    assert.equal(asCatalog.status, 403);
    const asOrders = await post(paymentsPort, '/charges', bundle, await credentialsFor('orders'));
    assert.ok(asOrders.status !== null && asOrders.status !== 403, `orders: ${asOrders.status} ${asOrders.error}`);
    // The refusal is a decision event in payments' log.
    await waitForLine(launcher, /"event":"decision".*"caller":"spiffe:\/\/shop\.local\/svc\/catalog"/, 5_000);
  });

  test('the launcher made the dev KEK owner-only (0600, in a 0700 directory)', async () => {
    const file = join(dir, '.rampart', 'control', 'kek.key');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, '.rampart', 'control')).mode & 0o777, 0o700);
  });

  test('cleartext HTTP to a service gets nothing', async () => {
    const res = await httpGet(`http://127.0.0.1:${paymentsPort}/charges`);
    assert.notEqual(res.status, 200);
    assert.notEqual(res.status, 403);
  });
});
