/**
 * `rampart users|clients|login|token|identity` against a running provider: the first administrator
 * through the bootstrap token, `rampart login` by the device flow (the test plays the user in the
 * pages), administration through the admin API, and the README journey — a signed-in user's token
 * accepted by the gateway. Passwords only ever travel on standard input.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { decodeJwt } from 'jose';
import { credentialsFile } from '../../src/cli/identity-client.ts';
import {
  type IdentityIo,
  runClients,
  runIdentity,
  runLogin,
  runToken,
  runUsers,
} from '../../src/cli/identity-commands.ts';
import { currentTotp } from '../../src/identity/totp.ts';
import { Agent } from './agent.ts';
import { drivePages } from './flows.ts';
import { startGatewayFor, type TestGateway } from './gateway.ts';
import { startTestIdentity, TEST_AUDIENCE, type TestIdentity } from './harness.ts';

const ADMIN_PASSWORD = 'the administrator passphrase';
const BOB_PASSWORD = 'bob has a long passphrase too';

function base32(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  return Buffer.from(bits.match(/.{8}/g)!.map((b) => Number.parseInt(b, 2)));
}

describe('identity CLI', () => {
  let dir: string;
  let manifest: string;
  let idp: TestIdentity;
  let gateway: TestGateway;
  let env: NodeJS.ProcessEnv;
  let adminSecret: Buffer | null = null;
  let clock = 0;
  const now = () => Date.now() + clock;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rampart-cli-'));
    mkdirSync(join(dir, '.rampart', 'identity'), { recursive: true });
    mkdirSync(join(dir, 'services'));
    writeFileSync(join(dir, 'services', 'shop.ts'), 'export {};\n');
    idp = await startTestIdentity({ now, bootstrapFile: join(dir, '.rampart', 'identity', 'bootstrap-admin.token') });
    manifest = join(dir, 'rampart.yaml');
    writeFileSync(
      manifest,
      `trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: 18081 }
  tls: off
identity:
  builtin: { port: ${idp.port} }
  audience: ${TEST_AUDIENCE}
services:
  shop:
    run: services/shop.ts
    routes:
      - { id: orders, path: /orders/**, methods: [GET], auth: { scopes: [orders] } }
`,
    );
    env = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'config') };
    gateway = await startGatewayFor(idp.issuer, TEST_AUDIENCE);
  });
  after(async () => {
    await gateway?.close();
    await idp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = async (
    fn: (args: string[], io: Partial<IdentityIo>) => Promise<number>,
    args: string[],
    options: { stdin?: string; onStderr?: (text: string) => void } = {},
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
      options.onStderr?.(err);
    });
    const code = await fn([...args, '-f', manifest], {
      stdout,
      stderr,
      stdin: Readable.from(options.stdin === undefined ? [] : [options.stdin]),
      cwd: dir,
      env,
      sleep: () => delay(20),
    });
    return { code, out, err };
  };

  /** `rampart login` while the test signs in as `username` in the pages the CLI points to. */
  const login = async (args: string[], username: string, password: string) => {
    let started: ((url: string) => void) | null = null;
    const url = new Promise<string>((resolve) => {
      started = resolve;
    });
    const cli = run(runLogin, args, {
      onStderr: (text) => {
        const m = /(http:\/\/\S+\/device\?user_code=\S+)/.exec(text);
        if (m) started?.(m[1]!);
      },
    });
    const agent = new Agent();
    const first = await agent.follow(await agent.request(await url), idp.issuer);
    const { res } = await drivePages(agent, first, idp.issuer, {
      username,
      password,
      totp: (shown) => {
        if (shown) adminSecret = base32(shown);
        clock += 30_000; // a fresh time step for each code
        return currentTotp(adminSecret!, now());
      },
    });
    assert.match(res.body, /<h1>Device connected<\/h1>/);
    return cli;
  };

  test('the first administrator through the bootstrap token; the password comes from stdin only', async () => {
    const r = await run(runUsers, ['add', 'root', '--role', 'admin'], { stdin: `${ADMIN_PASSWORD}\n` });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /created root \(admin\)/);
    assert.ok(!r.out.includes(ADMIN_PASSWORD) && !r.err.includes(ADMIN_PASSWORD));
    assert.equal(existsSync(join(dir, '.rampart', 'identity', 'bootstrap-admin.token')), false);
  });

  test('without a stored admin token, administration is refused', async () => {
    const r = await run(runUsers, ['list']);
    assert.equal(r.code, 1);
    assert.match(r.err, /rampart login --admin/);
  });

  test('rampart login --admin: device flow with TOTP enrollment; the token is stored 0600', async () => {
    const r = await login(['--admin'], 'root', ADMIN_PASSWORD);
    const result = await r;
    assert.equal(result.code, 0, result.err);
    assert.match(result.err, /check that it shows the code [B-DF-HJ-NP-TV-Z]{4}-[B-DF-HJ-NP-TV-Z]{4}/);
    assert.equal(statSync(credentialsFile(env)).mode & 0o777, 0o600);
    const token = await run(runToken, ['--admin']);
    assert.equal(token.code, 0);
    assert.equal(decodeJwt(token.out.trim()).aud, `${idp.issuer}/admin`);
  });

  test('users: add (stdin), weak password refused, list, disable, enable, reset-mfa', async () => {
    const bob = await run(runUsers, ['add', 'bob', '--role', 'customer'], { stdin: `${BOB_PASSWORD}\n` });
    assert.equal(bob.code, 0, bob.err);
    const weak = await run(runUsers, ['add', 'weakling'], { stdin: 'passwordpassword\n' });
    assert.equal(weak.code, 1);
    assert.match(weak.err, /IDP_ERR_WEAK_PASSWORD common/);
    const none = await run(runUsers, ['add', 'nopass'], { stdin: '' });
    assert.equal(none.code, 1);
    const list = await run(runUsers, ['list', '--json']);
    const users = JSON.parse(list.out) as { username: string; roles: string[]; mfaEnrolled: boolean }[];
    assert.deepEqual(
      users.map((u) => [u.username, u.roles, u.mfaEnrolled]),
      [
        ['bob', ['customer'], false],
        ['root', ['admin'], true],
      ],
    );
    const table = await run(runUsers, ['list']);
    assert.match(table.out, /^USERNAME\s+ROLES\s+STATUS\s+MFA\n/);
    assert.equal((await run(runUsers, ['disable', 'bob'])).code, 0);
    assert.equal((await run(runUsers, ['enable', 'bob'])).code, 0);
    assert.equal((await run(runUsers, ['reset-mfa', 'bob'])).code, 0);
    assert.equal((await run(runUsers, ['disable', 'nobody'])).code, 1);
  });

  test('clients: the secret is printed once, never listed; rotate-secret replaces it', async () => {
    const added = await run(runClients, ['add', 'machine', '--id', 'svc', '--scope', 'orders', '--json']);
    assert.equal(added.code, 0, added.err);
    const { secret } = JSON.parse(added.out) as { secret: string };
    assert.ok(secret.length >= 43);
    const list = await run(runClients, ['list']);
    assert.match(list.out, /svc\s+machine\s+active\s+orders/);
    assert.ok(!list.out.includes(secret));
    const rotated = await run(runClients, ['rotate-secret', 'svc']);
    assert.equal(rotated.code, 0);
    assert.ok(!rotated.out.includes(secret));
    const bad = await run(runClients, ['add', 'web', '--redirect-uri', 'http://app.test/cb']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /IDP_ERR_INVALID_CLIENT/);
  });

  test('identity rotate-keys: refused early, forced on request; keys lists the states', async () => {
    const early = await run(runIdentity, ['rotate-keys']);
    assert.equal(early.code, 1);
    assert.match(early.err, /IDP_ERR_ROTATION_TOO_EARLY/);
    clock += 11 * 60_000;
    const rotated = await run(runIdentity, ['rotate-keys']);
    assert.equal(rotated.code, 0, rotated.err);
    const keys = await run(runIdentity, ['keys', '--json']);
    assert.deepEqual((JSON.parse(keys.out) as { state: string }[]).map((k) => k.state).sort(), [
      'current',
      'next',
      'previous',
    ]);
  });

  test('the README journey: rampart login as a user, then an authorized request through the gateway', async () => {
    const cli = await login([], 'bob', BOB_PASSWORD);
    assert.equal(cli.code, 0, cli.err);
    const { out } = await run(runToken, []);
    const token = out.trim();
    assert.deepEqual(decodeJwt(token)['roles'], ['customer']);
    assert.equal(decodeJwt(token)['scope'], 'orders');
    const res = await fetch(`${gateway.base}/orders/7`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
  });

  test('usage errors exit 2 with the usage; help exits 0', async () => {
    for (const [fn, args] of [
      [runUsers, []],
      [runUsers, ['frobnicate']],
      [runUsers, ['add']],
      [runUsers, ['list', '--bogus']],
      [runClients, ['rotate-secret']],
      [runIdentity, []],
      [runLogin, ['extra']],
    ] as const) {
      const r = await run(fn, [...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, /Usage: rampart/);
    }
    const help = await run(runUsers, ['--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /^Usage: rampart users/);
    const missing = await runUsers(['list', '-f', join(dir, 'nope.yaml')], {
      stdout: new PassThrough(),
      stderr: new PassThrough(),
      cwd: dir,
      env,
    });
    assert.equal(missing, 2);
  });
});
