/**
 * The admin API: only an administrator's token for the admin resource opens it (re-checked on every
 * call), the bootstrap token creates the first administrator and nothing else, and hostile requests
 * are refused with stable codes.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AUDIT_EVENTS } from '../../src/identity/audit.ts';
import { currentTotp } from '../../src/identity/totp.ts';
import { redeem, signIn } from './flows.ts';
import { startTestIdentity, type TestIdentity } from './harness.ts';

const PASSWORD = 'a long and unusual passphrase';
const REDIRECT = 'http://127.0.0.1/callback';

function base32(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  return Buffer.from(bits.match(/.{8}/g)!.map((b) => Number.parseInt(b, 2)));
}

describe('admin API', () => {
  let idp: TestIdentity;
  let dir: string;
  let bootstrapFile: string;
  let adminToken: string;
  const clock = 0;
  const now = () => Date.now() + clock;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rampart-admin-'));
    bootstrapFile = join(dir, 'bootstrap-admin.token');
    idp = await startTestIdentity({ bootstrapFile, now });
  });
  after(async () => {
    await idp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (
    method: string,
    path: string,
    init: { auth?: string; body?: unknown; type?: string; raw?: string } = {},
  ) =>
    fetch(`${idp.issuer}/admin/${path}`, {
      method,
      headers: {
        ...(init.auth ? { authorization: init.auth } : {}),
        ...(init.body !== undefined || init.raw !== undefined
          ? { 'content-type': init.type ?? 'application/json' }
          : {}),
      },
      body: init.raw ?? (init.body === undefined ? null : JSON.stringify(init.body)),
    });
  const json = async (res: Response) => (await res.json()) as Record<string, unknown>;

  /** An access token for the admin resource, through the pages (admins enroll TOTP at first login). */
  const adminLogin = async (username: string) => {
    let secret: Buffer | null = null;
    const s = await signIn(idp.issuer, {
      clientId: 'rampart-cli',
      redirectUri: REDIRECT,
      scope: 'openid identity:admin',
      username,
      password: PASSWORD,
      extra: { resource: `${idp.issuer}/admin` },
      totp: (shown) => {
        if (shown) secret = base32(shown);
        return currentTotp(secret!, now());
      },
    });
    const res = await redeem(idp.issuer, {
      code: s.code,
      verifier: s.verifier,
      redirectUri: REDIRECT,
      clientId: 'rampart-cli',
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { access_token: string }).access_token;
  };

  test('bootstrap: a 0600 token file exists while there is no administrator; it creates one admin, nothing else', async () => {
    assert.equal(statSync(bootstrapFile).mode & 0o777, 0o600);
    const token = readFileSync(bootstrapFile, 'utf8').trim();
    const auth = `Bootstrap ${token}`;
    assert.equal((await call('GET', 'users', { auth })).status, 403, 'cannot list');
    assert.equal(
      (await call('POST', 'users', { auth, body: { username: 'eve', password: PASSWORD, roles: [] } })).status,
      403,
    );
    assert.equal((await call('POST', 'users', { auth: 'Bootstrap wrongwrongwrongwrongwrong', body: {} })).status, 401);
    const created = await call('POST', 'users', {
      auth,
      body: { username: 'root-admin', password: PASSWORD, roles: ['admin'] },
    });
    assert.equal(created.status, 201);
    const user = (await json(created))['user'] as Record<string, unknown>;
    assert.equal(user['mfaRequired'], true, 'administrators must use MFA');
    assert.equal(user['passwordHash'], undefined);
    assert.equal(existsSync(bootstrapFile), false, 'the file is gone once an administrator exists');
    assert.equal(
      (await call('POST', 'users', { auth, body: { username: 'x', password: PASSWORD, roles: ['admin'] } })).status,
      401,
    );
  });

  test('an administrator’s token opens the API; its audience, scope and the role are all required', async () => {
    adminToken = await adminLogin('root-admin');
    const list = await call('GET', 'users', { auth: `Bearer ${adminToken}` });
    assert.equal(list.status, 200);
    assert.ok(((await json(list))['users'] as unknown[]).length >= 1);
    assert.equal(list.headers.get('cache-control'), 'no-store');

    // A token for the API audience is not an admin token.
    await idp.identity.accounts.create({
      username: 'mallory',
      password: PASSWORD,
      roles: ['admin'],
      mfaRequired: false,
    });
    await idp.identity.clients.add({
      kind: 'native',
      clientId: 'app',
      redirectUris: [REDIRECT],
      scopes: ['openid', 'orders', 'identity:admin'],
    });
    const s = await signIn(idp.issuer, {
      clientId: 'app',
      redirectUri: REDIRECT,
      scope: 'openid orders',
      username: 'mallory',
      password: PASSWORD,
    });
    const apiToken = (
      (await (
        await redeem(idp.issuer, { code: s.code, verifier: s.verifier, redirectUri: REDIRECT, clientId: 'app' })
      ).json()) as {
        access_token: string;
      }
    ).access_token;
    assert.equal((await call('GET', 'users', { auth: `Bearer ${apiToken}` })).status, 401);

    // A non-admin asking for the admin scope at consent does not get it.
    await idp.identity.accounts.create({ username: 'frank', password: PASSWORD, roles: ['user'] });
    const f = await signIn(idp.issuer, {
      clientId: 'rampart-cli',
      redirectUri: REDIRECT,
      scope: 'openid identity:admin',
      username: 'frank',
      password: PASSWORD,
      extra: { resource: `${idp.issuer}/admin` },
    });
    const frank = (await (
      await redeem(idp.issuer, { code: f.code, verifier: f.verifier, redirectUri: REDIRECT, clientId: 'rampart-cli' })
    ).json()) as {
      access_token: string;
      scope?: string;
    };
    assert.ok(!(frank.scope ?? '').includes('identity:admin'));
    assert.equal((await call('GET', 'users', { auth: `Bearer ${frank.access_token}` })).status, 403);
  });

  test('the role is re-checked on every call: a demoted or disabled admin’s token stops working', async () => {
    const mallory = await signIn(idp.issuer, {
      clientId: 'rampart-cli',
      redirectUri: REDIRECT,
      scope: 'openid identity:admin',
      username: 'mallory',
      password: PASSWORD,
      extra: { resource: `${idp.issuer}/admin` },
    });
    const token = (
      (await (
        await redeem(idp.issuer, {
          code: mallory.code,
          verifier: mallory.verifier,
          redirectUri: REDIRECT,
          clientId: 'rampart-cli',
        })
      ).json()) as { access_token: string }
    ).access_token;
    assert.equal((await call('GET', 'clients', { auth: `Bearer ${token}` })).status, 200);
    const id = (await idp.identity.accounts.getByUsername('mallory'))!.id;
    await idp.identity.accounts.setRoles(id, ['user']);
    assert.equal((await call('GET', 'clients', { auth: `Bearer ${token}` })).status, 403);
    await idp.identity.accounts.setRoles(id, ['admin']);
    await idp.identity.accounts.setDisabled(id, true);
    assert.equal((await call('GET', 'clients', { auth: `Bearer ${token}` })).status, 403);
    assert.ok(idp.audit.events.some((e) => e.type === AUDIT_EVENTS.adminDenied && e.reason === 'insufficient_scope'));
  });

  test('a machine client with the admin scope may use the API while registered and enabled', async () => {
    const auth = `Bearer ${adminToken}`;
    const created = await json(
      await call('POST', 'clients', {
        auth,
        body: { kind: 'machine', clientId: 'ops-bot', scopes: ['identity:admin'] },
      }),
    );
    const secret = created['secret'] as string;
    const tokenRes = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`ops-bot:${secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        scope: 'identity:admin',
        resource: `${idp.issuer}/admin`,
      }),
    });
    const botToken = ((await tokenRes.json()) as { access_token: string }).access_token;
    assert.equal((await call('GET', 'users', { auth: `Bearer ${botToken}` })).status, 200);
    await call('POST', 'clients/ops-bot/disable', { auth });
    assert.equal((await call('GET', 'users', { auth: `Bearer ${botToken}` })).status, 403);
  });

  test('users and clients through the API, with stable error codes', async () => {
    const auth = `Bearer ${adminToken}`;
    const weak = await call('POST', 'users', { auth, body: { username: 'gina', password: 'passwordpassword' } });
    assert.equal(weak.status, 400);
    assert.deepEqual(await json(weak), { error: 'invalid_request', code: 'IDP_ERR_WEAK_PASSWORD', reason: 'common' });
    assert.equal((await call('POST', 'users', { auth, body: { username: 'gina', password: PASSWORD } })).status, 201);
    const dup = await call('POST', 'users', { auth, body: { username: 'GINA', password: PASSWORD } });
    assert.equal(dup.status, 409, 'usernames are compared case-insensitively');
    assert.equal((await json(dup))['code'], 'IDP_ERR_CONFLICT');
    assert.equal((await call('POST', 'users/gina/disable', { auth })).status, 200);
    assert.equal((await call('POST', 'users/gina/enable', { auth })).status, 200);
    assert.equal((await call('POST', 'users/gina/reset-mfa', { auth })).status, 200);
    assert.equal((await call('POST', 'users/gina/unlock', { auth })).status, 200);
    assert.equal((await call('POST', 'users/nobody/disable', { auth })).status, 404);

    const bad = await call('POST', 'clients', {
      auth,
      body: { kind: 'web', redirectUris: ['http://app.test/cb'], scopes: [] },
    });
    assert.equal(bad.status, 400);
    assert.deepEqual(await json(bad), {
      error: 'invalid_request',
      code: 'IDP_ERR_INVALID_CLIENT',
      field: 'redirectUris[0]',
    });
    const web = await json(
      await call('POST', 'clients', {
        auth,
        body: { kind: 'web', clientId: 'shop', redirectUris: ['https://shop.test/cb'], scopes: ['openid'] },
      }),
    );
    const first = web['secret'] as string;
    assert.ok(first.length >= 43);
    const rotated = await json(await call('POST', 'clients/shop/rotate-secret', { auth }));
    assert.notEqual(rotated['secret'], first);
    const listed = JSON.stringify(await json(await call('GET', 'clients', { auth })));
    assert.ok(!listed.includes(first) && !listed.includes(rotated['secret'] as string), 'secrets are never listed');
    assert.ok(idp.audit.events.some((e) => e.type === AUDIT_EVENTS.adminAction && e.reason === 'client.rotate_secret'));
    assert.ok(!JSON.stringify(idp.audit.events).includes(first));
  });

  test('keys: rotation through the API refuses to be early unless forced', async () => {
    const auth = `Bearer ${adminToken}`;
    const early = await call('POST', 'keys/rotate', { auth, body: {} });
    assert.equal(early.status, 409);
    assert.equal((await json(early))['code'], 'IDP_ERR_ROTATION_TOO_EARLY');
    const forced = await call('POST', 'keys/rotate', { auth, body: { force: true } });
    assert.equal(forced.status, 200);
    const { keys } = (await json(await call('GET', 'keys', { auth }))) as { keys: { state: string }[] };
    assert.deepEqual(keys.map((k) => k.state).sort(), ['current', 'next', 'previous']);
    // The admin token signed by the previous key still works (the key stays published).
    assert.equal((await call('GET', 'users', { auth })).status, 200);
  });

  test('hostile requests', async () => {
    const auth = `Bearer ${adminToken}`;
    const cases: [string, string, Parameters<typeof call>[2], number][] = [
      ['GET', 'users', {}, 401],
      ['GET', 'users', { auth: 'Bearer not.a.jwt' }, 401],
      ['GET', 'users', { auth: `Basic ${Buffer.from('a:b').toString('base64')}` }, 401],
      ['GET', 'users', { auth: `bearer ${adminToken}` }, 401],
      ['POST', 'users', { auth, raw: '{"username":', type: 'application/json' }, 400],
      ['POST', 'users', { auth, raw: '[]', type: 'application/json' }, 400],
      ['POST', 'users', { auth, raw: 'username=x', type: 'application/x-www-form-urlencoded' }, 415],
      ['POST', 'users', { auth, raw: JSON.stringify({ username: 'x'.repeat(70_000) }) }, 413],
      ['POST', 'users', { auth, body: { username: 'ok-name', password: 42 } }, 400],
      ['POST', 'users', { auth, body: { username: 'ok-name2', password: PASSWORD, roles: ['Not A Role!'] } }, 400],
      ['PUT', 'users', { auth }, 405],
      ['GET', 'users/%2e%2e/disable', { auth }, 404],
      ['GET', 'nothing', { auth }, 404],
      ['POST', 'users//disable', { auth }, 404],
    ];
    for (const [method, path, init, status] of cases) {
      assert.equal((await call(method, path, init)).status, status, `${method} ${path}`);
    }
  });
});
