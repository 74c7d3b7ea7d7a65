/**
 * The example shop, end to end, as a user runs it: `rampart start` on the shop's manifest (ports moved to
 * free ones, identity pointed at a test issuer so real tokens can be minted), then requests through the
 * gateway only. Covers the flow across services, object-level authorization, a crashed service (503 at
 * once, then restarted), and Ctrl-C leaving no process behind.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent, fetch } from 'undici';
import { parseDocument } from 'yaml';
import { startTestIssuer, type TestIssuer } from './helpers/issuer.ts';
import { freePort, pgrep, type Tracked, waitForPidsGone } from './helpers/processes.ts';
import { startShop } from './helpers/shop.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const AUDIENCE = 'https://api.shop.local';

/** A copy of the shop inside the repository, so `import 'rampart/sdk'` resolves as it does in the example. */
function shopCopy(gatewayPort: number, issuer: TestIssuer): string {
  const dir = join(root, 'test', '.scratch', `shop-${process.pid}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  cpSync(join(root, 'examples', 'shop', 'services'), join(dir, 'services'), { recursive: true });
  const doc = parseDocument(readFileSync(join(root, 'examples', 'shop', 'rampart.yaml'), 'utf8'));
  doc.setIn(['gateway', 'listen', 'port'], gatewayPort);
  doc.set('identity', { external: { issuer: issuer.issuer, jwksUri: issuer.jwksUri }, audience: AUDIENCE });
  writeFileSync(join(dir, 'rampart.yaml'), doc.toString());
  return dir;
}

describe('example shop through the gateway', { timeout: 120_000 }, () => {
  let issuer: TestIssuer;
  let dir: string;
  let base: string;
  /** Trusts the shop's local CA only (`tls: auto`), as `curl --cacert .rampart/control/bundle.pem` does. */
  let edge: Agent | undefined;
  let launcher: Tracked;
  const cleanups: (() => unknown)[] = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };

  before(async () => {
    issuer = await startTestIssuer(AUDIENCE);
    const port = await freePort();
    base = `https://localhost:${port}`;
    dir = shopCopy(port, issuer);
    launcher = await startShop(ctx, dir, 60_000);
    edge = new Agent({ connect: { ca: readFileSync(join(dir, '.rampart', 'control', 'bundle.pem'), 'utf8') } });
  });

  after(async () => {
    // Kept beside the scratch directory for the post-mortem of a failed run.
    writeFileSync(`${dir}.log`, `${launcher?.stdout()}\n--- stderr ---\n${launcher?.stderr()}`);
    for (const fn of cleanups.reverse()) await fn();
    await edge?.close();
    for (const pid of await pgrep(dir)) process.kill(pid, 'SIGKILL');
    await issuer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (path: string, init: { method?: string; token?: string; json?: unknown } = {}) =>
    fetch(`${base}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
        ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: init.json === undefined ? null : JSON.stringify(init.json),
      signal: AbortSignal.timeout(5_000),
      dispatcher: edge,
    });

  test('the public catalog lists the seeded products', async () => {
    const res = await call('/catalog/products');
    assert.equal(res.status, 200);
    const { products } = (await res.json()) as { products: { name: string }[] };
    assert.deepEqual(
      products.map((p) => p.name),
      ['Rampart mug', 'Rampart hoodie', 'Sticker pack'],
    );
  });

  test('only an admin with catalog:write adds a product; the service sees who did', async () => {
    const product = { name: `Poster ${Date.now()}`, priceCents: 900 };
    const user = await issuer.mint({ sub: 'carol', scope: 'catalog:write', roles: ['user'] });
    assert.equal((await call('/catalog/products', { method: 'POST', token: user, json: product })).status, 403);
    const admin = await issuer.mint({ sub: 'admin-1', scope: 'catalog:write', roles: ['admin'] });
    const created = await call('/catalog/products', { method: 'POST', token: admin, json: product });
    assert.equal(created.status, 201);
    const { id } = (await created.json()) as { id: number };
    const fetched = (await (await call(`/catalog/products/${id}`)).json()) as { name: string };
    assert.equal(fetched.name, product.name);
  });

  test('an order crosses orders → catalog → payments; users see only their own orders', async () => {
    const alice = await issuer.mint({ sub: 'alice', scope: 'orders' });
    const bob = await issuer.mint({ sub: 'bob', scope: 'orders' });
    const created = await call('/orders', { method: 'POST', token: alice, json: { productId: 1, quantity: 2 } });
    assert.equal(created.status, 201);
    const order = (await created.json()) as { id: number; status: string; amountCents: number; chargeId: string };
    assert.equal(order.status, 'paid');
    assert.equal(order.amountCents, 2400);
    assert.match(order.chargeId, /^ch_/);

    assert.equal((await call(`/orders/${order.id}`, { token: alice })).status, 200);
    assert.equal(
      (await call(`/orders/${order.id}`, { token: bob })).status,
      404,
      "another user's order does not exist for bob",
    );
    const bobs = (await (await call('/orders', { token: bob })).json()) as { orders: unknown[] };
    assert.deepEqual(bobs.orders, []);
    assert.equal((await call('/orders', { token: await issuer.mint({ sub: 'alice', scope: 'profile' }) })).status, 403);
  });

  test('payments has no route: unreachable from outside', async () => {
    assert.equal((await call('/charges', { method: 'POST', json: {} })).status, 404);
    assert.equal((await call('/payments/charges', { method: 'POST', json: {} })).status, 404);
  });

  test('a killed service answers 503 at once while down, and is restarted', async () => {
    const [pid] = await pgrep(`${dir}/services/catalog.ts`);
    assert.ok(pid, 'the catalog process runs');
    process.kill(pid, 'SIGKILL');
    const seen = new Set<number>();
    const deadline = Date.now() + 30_000;
    for (;;) {
      const started = performance.now();
      const status = (await call('/catalog/products')).status;
      assert.ok(performance.now() - started < 3_000, 'no request hangs while the service is down');
      seen.add(status);
      if (status === 200 && seen.has(503)) break;
      assert.ok(Date.now() < deadline, `catalog did not come back (saw ${[...seen]})`);
      await delay(status === 503 ? 100 : 10);
    }
    assert.deepEqual(
      [...seen].filter((s) => s !== 200 && s !== 503),
      [],
    );
    const [restarted] = await pgrep(`${dir}/services/catalog.ts`);
    assert.ok(restarted && restarted !== pid, 'a new catalog process serves');
  });

  test('Ctrl-C stops every process and leaves none behind', async () => {
    const running = await pgrep(dir);
    assert.ok(running.length >= 6, `expected the launcher's processes, found ${running.length}`);
    launcher.signal('SIGINT');
    const status = await launcher.exited;
    assert.equal(status.code, 0, launcher.stderr());
    assert.deepEqual(await waitForPidsGone(running, 10_000), []);
    assert.deepEqual(await pgrep(dir), []);
  });
});
