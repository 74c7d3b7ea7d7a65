/**
 * The whole journey on the real system: `rampart start` runs the shop with the built-in identity
 * provider (its own process, Node's permission model), then the operator creates the first
 * administrator with the bootstrap token, signs in with `rampart login --admin` (device flow, TOTP),
 * adds a customer, the customer runs `rampart login`, and their token places and reads an order
 * through the gateway — verified by the gateway and again by the orders service.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent as EdgeAgent, type RequestInit as EdgeInit, fetch as edgeFetch } from 'undici';
import { parseDocument } from 'yaml';
import { type IdentityIo, runLogin, runToken, runUsers } from '../../src/cli/identity-commands.ts';
import { currentTotp } from '../../src/identity/totp.ts';
import { freePort, pgrep, type Tracked } from '../helpers/processes.ts';
import { startShop } from '../helpers/shop.ts';
import { Agent } from './agent.ts';
import { drivePages } from './flows.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const ADMIN_PASSWORD = 'the administrator passphrase';
const ALICE_PASSWORD = 'alice likes long passphrases';

function base32(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  return Buffer.from(bits.match(/.{8}/g)!.map((b) => Number.parseInt(b, 2)));
}

describe('rampart start with the built-in identity provider', { timeout: 180_000 }, () => {
  let dir: string;
  let manifest: string;
  let gateway: string;
  /** Trusts the shop's local CA only (`tls: auto`), as `curl --cacert .rampart/control/bundle.pem` does. */
  let edge: EdgeAgent | undefined;
  const viaGateway = (path: string, init: EdgeInit = {}) =>
    edgeFetch(`${gateway}${path}`, { ...init, dispatcher: edge });
  let issuer: string;
  let launcher: Tracked;
  const cleanups: (() => unknown)[] = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };
  let env: NodeJS.ProcessEnv;

  before(async () => {
    const gatewayPort = await freePort();
    const identityPort = await freePort();
    gateway = `https://localhost:${gatewayPort}`;
    issuer = `http://127.0.0.1:${identityPort}`;
    dir = join(root, 'test', '.scratch', `identity-${process.pid}-${Date.now()}`);
    mkdirSync(dir, { recursive: true });
    cpSync(join(root, 'examples', 'shop', 'services'), join(dir, 'services'), { recursive: true });
    const doc = parseDocument(readFileSync(join(root, 'examples', 'shop', 'rampart.yaml'), 'utf8'));
    doc.setIn(['gateway', 'listen', 'port'], gatewayPort);
    doc.setIn(['identity', 'builtin', 'port'], identityPort);
    manifest = join(dir, 'rampart.yaml');
    writeFileSync(manifest, doc.toString());
    env = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'config') };
    launcher = await startShop(ctx, dir, 90_000);
    edge = new EdgeAgent({ connect: { ca: readFileSync(join(dir, '.rampart', 'control', 'bundle.pem'), 'utf8') } });
  });

  after(async () => {
    writeFileSync(`${dir}.log`, `${launcher?.stdout()}\n--- stderr ---\n${launcher?.stderr()}`);
    for (const fn of cleanups.reverse()) await fn();
    await edge?.close();
    for (const pid of await pgrep(dir)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}.log`, { force: true });
  });

  const run = async (
    fn: (args: string[], io: Partial<IdentityIo>) => Promise<number>,
    args: string[],
    stdin = '',
    onStderr?: (t: string) => void,
  ) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    stderr.on('data', (c: Buffer) => {
      err += c.toString();
      onStderr?.(err);
    });
    const code = await fn([...args, '-f', manifest], {
      stdout,
      stderr,
      stdin: Readable.from([stdin]),
      cwd: dir,
      env,
      sleep: () => delay(100),
    });
    return { code, out, err };
  };

  let secret: Buffer | null = null;
  const login = async (args: string[], username: string, password: string) => {
    let found: (url: string) => void = () => {};
    const url = new Promise<string>((resolve) => {
      found = resolve;
    });
    const cli = run(runLogin, args, '', (text) => {
      const m = /(http:\/\/\S+\/device\?user_code=\S+)/.exec(text);
      if (m) found(m[1]!);
    });
    const agent = new Agent();
    const { res } = await drivePages(agent, await agent.follow(await agent.request(await url), issuer), issuer, {
      username,
      password,
      totp: (shown) => {
        if (shown) secret = base32(shown);
        return currentTotp(secret!, Date.now());
      },
    });
    assert.match(res.body, /Device connected/);
    return cli;
  };

  test('the provider serves discovery and keys on its issuer, under the permission model', async () => {
    const meta = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<string, string>;
    assert.equal(meta['issuer'], issuer);
    const jwks = (await (await fetch(meta['jwks_uri']!)).json()) as { keys: unknown[] };
    assert.equal(jwks.keys.length, 2, 'current and next');
    const ready = await fetch(`${issuer}/admin/users`);
    assert.equal(ready.status, 401, 'the admin API is there and closed');
  });

  test('the journey: first admin, admin login, a customer, the customer’s login, an order through the gateway', async () => {
    const first = await run(runUsers, ['add', 'root', '--role', 'admin'], `${ADMIN_PASSWORD}\n`);
    assert.equal(first.code, 0, first.err);
    const admin = await login(['--admin'], 'root', ADMIN_PASSWORD);
    assert.equal(admin.code, 0, admin.err);
    const alice = await run(runUsers, ['add', 'alice', '--role', 'customer'], `${ALICE_PASSWORD}\n`);
    assert.equal(alice.code, 0, alice.err);

    const customer = await login([], 'alice', ALICE_PASSWORD);
    assert.equal(customer.code, 0, customer.err);
    const token = (await run(runToken, [])).out.trim();
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const created = await viaGateway('/orders', {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ productId: 1, quantity: 1 }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const mine = (await (await viaGateway('/orders', { headers: auth })).json()) as { orders: unknown[] };
    assert.equal(mine.orders.length, 1);
    assert.equal((await viaGateway('/orders')).status, 401, 'no token, no orders');
    // A customer token does not carry the admin-only scope: the catalog refuses a new product.
    const product = await viaGateway('/catalog/products', {
      method: 'POST',
      headers: auth,
      body: '{"name":"x","priceCents":1}',
    });
    assert.equal(product.status, 403);
  });
});
