/**
 * An https issuer with a path, served on plain loopback HTTP behind a TLS terminator (the gateway or a
 * load balancer): discovery, tokens and pages use the issuer's scheme, host and path — never what the
 * request carried — and cookies are Secure.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { startTestIdentity, type TestIdentity } from './harness.ts';

const ISSUER = 'https://idp.example:8443/oidc';

describe('issuer behind TLS termination, under a path', () => {
  let idp: TestIdentity;
  let secret: string;

  before(async () => {
    idp = await startTestIdentity({ issuer: () => ISSUER });
    secret = (await idp.identity.clients.add({ kind: 'machine', clientId: 'svc', scopes: ['orders'] })).secret!;
    await idp.identity.clients.add({
      kind: 'native',
      clientId: 'app',
      redirectUris: ['http://127.0.0.1/cb'],
      scopes: ['openid'],
    });
  });
  after(async () => {
    await idp?.close();
  });

  /** A request as the terminator forwards it: plain HTTP to loopback, the public Host kept. */
  const send = (method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>(
      (resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: idp.port, method, path, headers: { host: 'idp.example:8443', ...headers } },
          (res) => {
            let text = '';
            res.setEncoding('utf8').on('data', (c: string) => {
              text += c;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
          },
        );
        req.on('error', reject);
        req.end(body);
      },
    );

  test('discovery names https endpoints under the path, whatever the forwarding headers say', async () => {
    const res = await send('GET', '/oidc/.well-known/openid-configuration', {
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'evil.example',
    });
    assert.equal(res.status, 200);
    const meta = JSON.parse(res.body) as Record<string, string>;
    assert.equal(meta['issuer'], ISSUER);
    assert.equal(meta['token_endpoint'], `${ISSUER}/token`);
    assert.equal(meta['jwks_uri'], `${ISSUER}/jwks`);
    assert.equal(meta['authorization_endpoint'], `${ISSUER}/auth`);
    assert.equal(res.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
  });

  test('paths outside the issuer path are not served; another Host is refused', async () => {
    assert.equal((await send('GET', '/.well-known/openid-configuration')).status, 404);
    assert.equal((await send('GET', '/oidcx/jwks')).status, 404);
    assert.equal((await send('GET', '/oidc/jwks', { host: '127.0.0.1' })).status, 421);
  });

  test('tokens carry the https issuer', async () => {
    const res = await send(
      'POST',
      '/oidc/token',
      {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`svc:${secret}`).toString('base64')}`,
      },
      'grant_type=client_credentials&scope=orders',
    );
    assert.equal(res.status, 200, res.body);
    assert.equal(decodeJwt((JSON.parse(res.body) as { access_token: string }).access_token).iss, ISSUER);
  });

  test('the login redirect, pages and cookies live under the path, and cookies are Secure', async () => {
    const auth = await send(
      'GET',
      `/oidc/auth?${new URLSearchParams({
        client_id: 'app',
        redirect_uri: 'http://127.0.0.1/cb',
        response_type: 'code',
        scope: 'openid',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      })}`,
    );
    assert.equal(auth.status, 303);
    const location = String(auth.headers['location']);
    assert.match(location, /^\/oidc\/interaction\/[A-Za-z0-9_-]+$/);
    const cookies = [auth.headers['set-cookie'] ?? []].flat();
    assert.ok(cookies.length > 0);
    for (const c of cookies) {
      assert.match(c, /;\s*secure/i, c);
      assert.match(c, /;\s*httponly/i, c);
      assert.match(c, /path=\/oidc\//i, c);
    }
    const page = await send('GET', location, { cookie: cookies.map((c) => c.split(';')[0]).join('; ') });
    assert.equal(page.status, 200);
    assert.match(page.body, /href="\/oidc\/assets\/rampart\.css"/);
    assert.match(page.body, /action="\/oidc\/interaction\/[^"]+\/login"/);
  });
});
