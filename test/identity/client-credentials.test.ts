/**
 * Machine tokens end to end: a client registered through the registry gets an RFC 9068 access token
 * by client credentials, the gateway accepts it on a protected route, the signing keys rotate with the
 * next key published before it signs, and the provider refuses what it must.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { createAccessTokenVerifier } from '../../src/core/access-token.ts';
import { isRampartError } from '../../src/core/errors.ts';
import { AUDIT_EVENTS } from '../../src/identity/audit.ts';
import { startGatewayFor, type TestGateway } from './gateway.ts';
import { startTestIdentity, TEST_AUDIENCE, type TestIdentity } from './harness.ts';

describe('client credentials, JWKS and key rotation', () => {
  let idp: TestIdentity;
  let gateway: TestGateway;
  let secret: string;
  let clock = 0;

  before(async () => {
    idp = await startTestIdentity({ now: () => Date.now() + clock });
    const added = await idp.identity.clients.add({ kind: 'machine', clientId: 'billing', scopes: ['orders'] });
    secret = added.secret!;
    gateway = await startGatewayFor(idp.issuer, TEST_AUDIENCE);
  });
  after(async () => {
    await gateway?.close();
    await idp?.close();
  });

  const token = (body: Record<string, string>, credentials: string | null = `billing:${secret}`) =>
    fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(credentials ? { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` } : {}),
      },
      body: new URLSearchParams(body),
    });

  const issue = async (scope = 'orders') => {
    const res = await token({ grant_type: 'client_credentials', scope });
    assert.equal(res.status, 200);
    return ((await res.json()) as { access_token: string }).access_token;
  };

  test('discovery names the issuer’s endpoints and the jwks route the launcher promises', async () => {
    const meta = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as Record<
      string,
      unknown
    >;
    assert.equal(meta['issuer'], idp.issuer);
    assert.equal(meta['jwks_uri'], `${idp.issuer}/jwks`);
    assert.equal(meta['token_endpoint'], `${idp.issuer}/token`);
    assert.deepEqual(meta['response_types_supported'], ['code']);
    assert.deepEqual(meta['code_challenge_methods_supported'], ['S256']);
    assert.ok(!(meta['grant_types_supported'] as string[]).includes('implicit'));
    assert.ok(!(meta['grant_types_supported'] as string[]).includes('password'));
    assert.deepEqual(meta['id_token_signing_alg_values_supported'], ['ES256']);
  });

  test('a client-credentials token is an RFC 9068 JWT the shared verifier accepts', async () => {
    const events = idp.audit.events.length;
    const at = await issue();
    const header = decodeProtectedHeader(at);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.alg, 'ES256');
    const claims = decodeJwt(at);
    assert.equal(claims.iss, idp.issuer);
    assert.equal(claims.aud, TEST_AUDIENCE);
    assert.equal(claims.sub, 'billing');
    assert.equal(claims['client_id'], 'billing');
    assert.equal(claims['scope'], 'orders');
    assert.equal(claims.exp! - claims.iat!, 600);
    assert.equal(typeof claims.jti, 'string');
    const verify = createAccessTokenVerifier({
      issuer: idp.issuer,
      audience: TEST_AUDIENCE,
      jwksUri: `${idp.issuer}/jwks`,
    });
    const identity = await verify(at);
    assert.equal(identity.machine, true);
    assert.deepEqual([...identity.scopes], ['orders']);
    const issued = idp.audit.events.slice(events).find((e) => e.type === AUDIT_EVENTS.tokenIssued);
    assert.equal(issued?.clientId, 'billing');
    assert.ok(!JSON.stringify(idp.audit.events).includes(at.split('.')[2]!), 'no token in audit events');
  });

  test('the gateway lets the token through on a route needing its scope, not on one needing a role', async () => {
    const at = await issue();
    const ok = await fetch(`${gateway.base}/orders/42`, { headers: { authorization: `Bearer ${at}` } });
    assert.equal(ok.status, 200);
    const admin = await fetch(`${gateway.base}/admin`, { headers: { authorization: `Bearer ${at}` } });
    assert.equal(admin.status, 403);
  });

  test('scopes the client may not have are dropped; a foreign resource is invalid_target', async () => {
    const at = await issue('orders catalog:write');
    assert.equal(decodeJwt(at)['scope'], 'orders');
    const foreign = await token({ grant_type: 'client_credentials', resource: 'https://elsewhere.test' });
    assert.equal(foreign.status, 400);
    assert.equal(((await foreign.json()) as { error: string }).error, 'invalid_target');
  });

  const refusals: [string, () => Promise<Response>, number, string][] = [
    [
      'wrong client secret',
      () => token({ grant_type: 'client_credentials' }, 'billing:not-the-secret'),
      401,
      'invalid_client',
    ],
    ['unknown client', () => token({ grant_type: 'client_credentials' }, `nobody:${secret}`), 401, 'invalid_client'],
    ['no client authentication', () => token({ grant_type: 'client_credentials' }, null), 400, 'invalid_request'],
    [
      'password grant',
      () => token({ grant_type: 'password', username: 'a', password: 'b' }),
      400,
      'unsupported_grant_type',
    ],
    ['implicit-style grant', () => token({ grant_type: 'implicit' }), 400, 'unsupported_grant_type'],
    [
      'a grant the client is not registered for',
      () => token({ grant_type: 'refresh_token', refresh_token: 'x' }),
      400,
      'unauthorized_client',
    ],
  ];
  for (const [name, send, status, error] of refusals) {
    test(`refused: ${name} → ${error}`, async () => {
      const res = await send();
      assert.equal(res.status, status);
      assert.equal(((await res.json()) as { error: string }).error, error);
    });
  }

  test('a disabled client stops existing; enabling it again restores it', async () => {
    await idp.identity.clients.setDisabled('billing', true);
    const res = await token({ grant_type: 'client_credentials' });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: string }).error, 'invalid_client');
    await idp.identity.clients.setDisabled('billing', false);
    await issue();
  });

  test('a rotated secret works at once and the old one stops', async () => {
    const old = secret;
    secret = await idp.identity.clients.rotateSecret('billing');
    assert.notEqual(secret, old);
    await issue();
    const res = await token({ grant_type: 'client_credentials' }, `billing:${old}`);
    assert.equal(res.status, 401);
  });

  test('client secrets are sealed at rest', async () => {
    const record = (await idp.store.findClient('billing'))!;
    assert.ok(record.secret);
    assert.ok(!record.secret.toString('latin1').includes(secret));
  });

  test('a request for another host is refused; forwarded headers cannot move the endpoints', async () => {
    const raw = (headers: Record<string, string>) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: idp.port, path: '/.well-known/openid-configuration', headers },
          (res) => {
            let body = '';
            res.setEncoding('utf8').on('data', (c: string) => {
              body += c;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    assert.equal((await raw({ host: 'evil.example' })).status, 421);
    const forged = await raw({
      host: `127.0.0.1:${idp.port}`,
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'https',
      forwarded: 'host=evil.example;proto=https',
    });
    assert.equal(forged.status, 200);
    assert.ok(!forged.body.includes('evil.example'));
    assert.ok(!forged.body.includes('https://127.0.0.1'));
  });

  test('key rotation: the next key is published before it signs, and the old one stays until its tokens expire', async () => {
    let fetches = 0;
    const verify = createAccessTokenVerifier({
      issuer: idp.issuer,
      audience: TEST_AUDIENCE,
      jwksUri: `${idp.issuer}/jwks`,
      onJwksFetch: () => {
        fetches++;
      },
    });
    const before = await issue();
    await verify(before);
    assert.equal(fetches, 1);
    const jwks = async () =>
      ((await (await fetch(`${idp.issuer}/jwks`)).json()) as { keys: { kid: string; key_ops?: string[] }[] }).keys;
    const [k1, k2] = await jwks();
    assert.equal(decodeProtectedHeader(before).kid, k1!.kid, 'the current key signs');
    assert.deepEqual(k2!.key_ops, ['verify'], 'the next key is published for verification only');

    await assert.rejects(idp.identity.rotateKeys(), (err) => isRampartError(err, 'IDP_ERR_ROTATION_TOO_EARLY'));
    clock += 11 * 60_000; // the next key has now been published longer than the verifiers' JWKS freshness
    const rotation = await idp.identity.rotateKeys();
    assert.deepEqual([rotation.previous, rotation.current], [k1!.kid, k2!.kid]);

    const afterRotation = await issue();
    assert.equal(decodeProtectedHeader(afterRotation).kid, k2!.kid);
    await verify(afterRotation);
    await verify(before);
    assert.equal(fetches, 1, 'the verifier already held the new key: no fetch, no unknown kid');
    const keys = await jwks();
    assert.deepEqual(
      keys.map((k) => k.kid),
      [rotation.current, rotation.next, rotation.previous],
    );

    clock += 11 * 60_000;
    const second = await idp.identity.rotateKeys();
    assert.ok(!(await jwks()).some((k) => k.kid === k1!.kid), 'a key two rotations old is gone');
    assert.equal(second.previous, k2!.kid);
    assert.ok(idp.audit.events.some((e) => e.type === AUDIT_EVENTS.keysRotated));
  });

  test('private signing keys are sealed at rest', async () => {
    for (const k of await idp.store.listKeys()) {
      assert.ok(!k.privateJwk.toString('latin1').includes('"d"'));
      assert.equal(k.publicJwk['d'], undefined);
    }
  });
});
