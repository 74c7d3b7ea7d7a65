/**
 * Issue 4's must-show for the hops, with real SDK services serving mutual TLS (SVIDs from a stand-in
 * control plane whose CA key the test holds, so it can sign the certificates a real CA never would):
 * a valid certificate for the wrong service → 403 and a decision event; a certificate from another CA,
 * an expired one, one with two URI SANs, or none → the handshake or the request fails; `svc.call`
 * refuses a server that is not the peer it meant to call; real tools (`openssl s_client`,
 * `openssl verify`) agree.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Pool } from 'undici';
import type { AccessTokenVerifier } from '../../src/core/access-token.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { InboundPolicy, ServiceRuntime } from '../../src/core/runtime.ts';
import { createSpiffeConnect } from '../../src/gateway/upstream.ts';
import { type RampartService, service } from '../../src/sdk/index.ts';
import { freePort } from '../helpers/processes.ts';
import { createFakeCa, type FakeCa, startFakeControl } from './fake-control.ts';

const run = promisify(execFile);
const TD = 'shop.local';
const id = (name: string) => `spiffe://${TD}/svc/${name}`;
const noTokens = (async () => {
  throw new Error('no user tokens in this test');
}) as unknown as AccessTokenVerifier;

interface Outcome {
  status: number | null;
  error: string | null;
  body: string;
}

/** One request presenting `credentials` (or none), trusting `ca`. */
function exchange(
  url: string,
  method: string,
  path: string,
  ca: string,
  credentials?: { cert: string; key: string },
): Promise<Outcome> {
  return new Promise((resolve) => {
    const { hostname, port } = new URL(url);
    // The path goes out as written (a URL object would resolve its dot segments first).
    const req = request({
      host: hostname,
      port,
      path,
      method,
      ca,
      ...credentials,
      agent: false,
      checkServerIdentity: () => undefined,
      headers: { 'content-type': 'application/json' },
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ status: null, error: err.code ?? err.message, body: '' }),
    );
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, error: null, body: Buffer.concat(chunks).toString() }),
      );
      res.on('error', (err) => resolve({ status: res.statusCode ?? 0, error: err.message, body: '' }));
    });
    req.end(method === 'POST' ? '{"amount":1}' : undefined);
  });
}

describe('mutual TLS on the hops (SDK)', { timeout: 60_000 }, () => {
  let ca: FakeCa;
  let control: Awaited<ReturnType<typeof startFakeControl>>;
  const dirs: string[] = [];
  const started: RampartService[] = [];
  const logs: Record<string, string[]> = {};
  let payments: RampartService;
  let paymentsUrl: string;
  let catalogUrl: string;
  let orders: RampartService;

  async function startService(
    name: string,
    callers: InboundPolicy['callers'],
    peers: Record<string, string>,
    routes: (svc: RampartService) => void,
  ): Promise<{ svc: RampartService; url: string }> {
    const dir = mkdtempSync(join(tmpdir(), `rampart-${name}-`));
    dirs.push(dir);
    const port = await freePort();
    const runtime: ServiceRuntime = {
      kind: 'service',
      name,
      dataDir: dir,
      adminPort: await freePort(),
      manifestFile: join(dir, 'rampart.yaml'),
      port,
      identity: { issuer: 'https://issuer.invalid', audience: 'https://api.shop.local', jwksUri: null },
      peers,
      policy: { version: 1, callers },
      control: { url: control.url, bundle: ca.pem, trustDomain: TD },
      joinToken: name,
    };
    const lines: string[] = [];
    logs[name] = lines;
    const logger = createLogger({ name, destination: { write: (line: string) => lines.push(line) } as never });
    const svc = service({ runtime, verifier: noTokens, logger });
    routes(svc);
    await svc.start();
    started.push(svc);
    return { svc, url: `https://127.0.0.1:${port}` };
  }

  before(async () => {
    ca = await createFakeCa();
    control = await startFakeControl(ca, TD);
    ({ svc: payments, url: paymentsUrl } = await startService(
      'payments',
      { [id('orders')]: [{ methods: ['POST'], paths: ['/charges'] }] },
      {},
      (svc) => {
        svc.app.post('/charges', async (req) => ({ charged: true, caller: req.caller }));
        svc.app.get('/charges', async () => ({ listed: true }));
      },
    ));
    ({ url: catalogUrl } = await startService(
      'catalog',
      { [id('gateway')]: [{ methods: ['GET'], paths: ['/catalog/products'] }] },
      {},
      (svc) => svc.app.get('/catalog/products', async () => []),
    ));
    ({ svc: orders } = await startService(
      'orders',
      { [id('gateway')]: [{ methods: ['POST'], paths: ['/orders'] }] },
      // payments is real; "impostor" is catalog's address under payments' name for the identity check.
      { payments: paymentsUrl },
      () => {},
    ));
  });
  after(async () => {
    for (const svc of started.reverse()) await svc.close();
    await control.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('orders calls payments with svc.call over mTLS; payments sees req.caller = orders', async () => {
    const res = await orders.call('payments', '/charges', { json: { amount: 1 } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { charged: true, caller: id('orders') });
  });

  test('a valid certificate for the wrong service → 403 and a decision event', async () => {
    const catalogCert = await ca.leaf({ uris: [id('catalog')] });
    const before = logs['payments']!.length;
    const res = await exchange(paymentsUrl, 'POST', '/charges', ca.pem, catalogCert);
    assert.equal(res.status, 403);
    const events = logs['payments']!.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
    const decision = events.find((e) => e.event === 'decision');
    assert.ok(decision, 'a decision event');
    assert.equal(decision.decision, 'deny');
    assert.equal(decision.caller, id('catalog'));
    assert.equal(decision.reason, 'unknown_caller');
    assert.equal(decision.path, '/charges');
    // The gateway is not a caller of payments either (no routes).
    assert.equal(
      (await exchange(paymentsUrl, 'POST', '/charges', ca.pem, await ca.leaf({ uris: [id('gateway')] }))).status,
      403,
    );
  });

  test('the right caller, but a method or path its policy does not list → 403', async () => {
    const ordersCert = await ca.leaf({ uris: [id('orders')] });
    assert.equal((await exchange(paymentsUrl, 'POST', '/charges', ca.pem, ordersCert)).status, 200);
    assert.equal((await exchange(paymentsUrl, 'GET', '/charges', ca.pem, ordersCert)).status, 403);
    assert.equal((await exchange(paymentsUrl, 'POST', '/refunds', ca.pem, ordersCert)).status, 403);
    // The query is not part of the path the policy matches.
    assert.equal((await exchange(paymentsUrl, 'POST', '/charges?id=1', ca.pem, ordersCert)).status, 200);
    // Non-canonical spellings of an allowed path are refused, not normalized into it.
    for (const path of ['/charges/', '/x/../charges', '/%63harges', '/charges/.', '//charges', '/x/../charges?id=1']) {
      const res = await exchange(paymentsUrl, 'POST', path, ca.pem, ordersCert);
      assert.equal(res.status === 403 || res.status === 400 || res.status === 404, true, `${path}: ${res.status}`);
      assert.notEqual(res.status, 200, path);
    }
  });

  test('certificates that must not get in: the handshake or the request fails', async () => {
    const other = await createFakeCa('Other CA');
    const rows: [string, { cert: string; key: string } | undefined][] = [
      ['no certificate', undefined],
      ['another CA', await other.leaf({ uris: [id('orders')] })],
      [
        'expired',
        await ca.leaf({
          uris: [id('orders')],
          notBefore: new Date(Date.now() - 3 * 3600_000),
          notAfter: new Date(Date.now() - 2 * 3600_000),
        }),
      ],
      ['two URI SANs', await ca.leaf({ uris: [id('orders'), id('catalog')] })],
      ['no URI SAN', await ca.leaf({ uris: [] })],
      ['another trust domain', await ca.leaf({ uris: ['spiffe://evil.local/svc/orders'] })],
    ];
    for (const [label, credentials] of rows) {
      const res = await exchange(paymentsUrl, 'POST', '/charges', ca.pem, credentials);
      assert.ok(res.status === null || res.status === 403, `${label}: ${res.status} ${res.error}`);
      assert.notEqual(res.status, 200, label);
    }
  });

  test('svc.call refuses a server that is not the peer it meant to call', async () => {
    // orders thinks payments lives at catalog's address: catalog's certificate is valid, but not payments'.
    const impostor = await startService('impostor-client', {}, { payments: catalogUrl }, () => {});
    await assert.rejects(impostor.svc.call('payments', '/charges', { json: {} }));
  });

  test('gateway upstream connector: presents the gateway SVID and accepts only the service it meant', async () => {
    const gateway = await ca.leaf({ uris: [id('gateway')] });
    const spiffe = createSpiffeConnect({
      keyPem: gateway.key,
      certificatePem: gateway.cert,
      bundlePem: ca.pem,
      trustDomain: TD,
    });
    const right = new Pool(catalogUrl, { connect: spiffe.connect('catalog') });
    const wrong = new Pool(catalogUrl, { connect: spiffe.connect('payments') });
    try {
      const res = await right.request({ path: '/catalog/products', method: 'GET' });
      assert.equal(res.statusCode, 200);
      await res.body.text();
      await assert.rejects(wrong.request({ path: '/catalog/products', method: 'GET' }));
      // The gateway is not a caller of payments (no routes there).
      const pay = new Pool(paymentsUrl, { connect: spiffe.connect('payments') });
      const denied = await pay.request({ path: '/charges', method: 'POST', body: '{}' });
      assert.equal(denied.statusCode, 403);
      await denied.body.text();
      await pay.close();
    } finally {
      await right.close();
      await wrong.close();
    }
  });

  test('openssl s_client without a client certificate is refused; openssl verify accepts the chain', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-openssl-'));
    try {
      const bundle = join(dir, 'bundle.pem');
      const leaf = join(dir, 'leaf.pem');
      writeFileSync(bundle, ca.pem);
      writeFileSync(leaf, payments.svid()!.certificatePem);
      const verified = await run('openssl', ['verify', '-CAfile', bundle, leaf]);
      assert.match(verified.stdout, /leaf\.pem: OK/);

      const { port } = new URL(paymentsUrl);
      // -ign_eof keeps s_client reading until the server closes; the request goes out once the handshake is done.
      const child = execFile(
        'openssl',
        ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', bundle, '-tls1_3', '-ign_eof', '-quiet'],
        { timeout: 10_000 },
        () => {},
      );
      let output = '';
      child.stdout?.on('data', (d) => (output += String(d)));
      child.stderr?.on('data', (d) => (output += String(d)));
      child.stdin?.end('POST /charges HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n');
      await new Promise((resolve) => child.on('close', resolve));
      assert.doesNotMatch(output, /HTTP\/1\.1 200/);
      assert.match(output, /alert|certificate required|error/i);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
