/**
 * The audit log as `rampart start` serves it: the shop with the built-in identity provider, every
 * process under the permission model. A refused admin request to the identity provider, a request
 * without a token at the gateway and the SVIDs the CA issued all end up in the control plane's log,
 * each reported by its own workload's SPIFFE ID; `rampart audit verify` passes on the running log.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent, fetch } from 'undici';
import { parseDocument } from 'yaml';
import { freePort, pgrep, type Tracked } from '../helpers/processes.ts';
import { type LoggedEvent, queryAuditLog, runRampart, waitForAuditEvent } from '../helpers/rampart-cli.ts';
import { startShop } from '../helpers/shop.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('the audit log under rampart start', { timeout: 180_000 }, () => {
  let dir: string;
  let launcher: Tracked;
  let gateway: string;
  let issuer: string;
  let edge: Agent;
  const cleanups: (() => unknown)[] = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };

  const logged = () => queryAuditLog(['--data', join(dir, '.rampart', 'control')], dir);
  const waitForEvent = (what: string, match: (e: LoggedEvent) => boolean) => waitForAuditEvent(logged, what, match);

  before(async () => {
    const gatewayPort = await freePort();
    const identityPort = await freePort();
    gateway = `https://localhost:${gatewayPort}`;
    issuer = `http://127.0.0.1:${identityPort}`;
    dir = join(root, 'test', '.scratch', `audit-system-${process.pid}-${Date.now()}`);
    mkdirSync(dir, { recursive: true });
    cpSync(join(root, 'examples', 'shop', 'services'), join(dir, 'services'), { recursive: true });
    const doc = parseDocument(readFileSync(join(root, 'examples', 'shop', 'rampart.yaml'), 'utf8'));
    doc.setIn(['gateway', 'listen', 'port'], gatewayPort);
    doc.setIn(['identity', 'builtin', 'port'], identityPort);
    writeFileSync(join(dir, 'rampart.yaml'), doc.toString());
    launcher = await startShop(ctx, dir, 120_000);
    edge = new Agent({ connect: { ca: readFileSync(join(dir, '.rampart', 'control', 'bundle.pem'), 'utf8') } });
  });

  after(async () => {
    writeFileSync(`${dir}.log`, `${launcher?.stdout()}\n--- stderr ---\n${launcher?.stderr()}`);
    await edge?.close();
    for (const fn of cleanups.reverse()) await fn();
    for (const pid of await pgrep(dir)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  test('identity, gateway and CA events arrive, each reported by its own workload; verify passes', async () => {
    const admin = await fetch(`${issuer}/admin/users`);
    assert.equal(admin.status, 401);
    await admin.body?.cancel();
    const orders = await fetch(`${gateway}/orders`, { dispatcher: edge });
    assert.equal(orders.status, 401);
    await orders.body?.cancel();

    const denied = await waitForEvent(
      'identity admin denial',
      (e) => e.component === 'identity' && e.action === 'identity.admin.denied',
    );
    assert.equal(denied.decision, 'deny');
    assert.equal(denied.reporter, 'spiffe://shop.local/svc/identity');

    const refused = await waitForEvent(
      'gateway denial of /orders',
      (e) => e.component === 'gateway' && e.resource === '/orders' && e.decision === 'deny',
    );
    assert.equal(refused.reporter, 'spiffe://shop.local/svc/gateway');

    const issued = (await logged()).filter((e) => e.component === 'ca' && e.action === 'svid.issue');
    for (const name of ['identity', 'gateway', 'orders', 'payments', 'catalog']) {
      assert.ok(
        issued.some((e) => e.resource === `spiffe://shop.local/svc/${name}`),
        `an SVID issuance for ${name} is logged`,
      );
    }
    assert.ok(issued.every((e) => e.reporter === 'spiffe://shop.local/svc/control'));
    // The shop serves `tls: auto`: the gateway's edge certificate is a CA decision too.
    assert.ok((await logged()).some((e) => e.component === 'ca' && e.action === 'edge_certificate.issue'));

    const verify = await runRampart(['audit', 'verify', '--data', join(dir, '.rampart', 'control')], dir);
    assert.equal(verify.code, 0, `${verify.stdout}\n${verify.stderr}`);
  });
});
