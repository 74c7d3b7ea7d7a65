/**
 * `openid-client` as a real relying party against the provider — discovery, authorization code with
 * PKCE, refresh rotation, refresh reuse revoking the grant, client credentials, revocation and
 * introspection — once with the SQLite store and once with PostgreSQL (the same suite, issue 5 §2).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import { requireService } from '../helpers/require-service.ts';
import { signIn } from './flows.ts';
import { type StoreKind, startTestIdentity, TEST_AUDIENCE, type TestIdentity } from './harness.ts';

const REDIRECT = 'https://app.test/callback';
const PASSWORD = 'a long and unusual passphrase';

for (const kind of ['sqlite', 'postgres'] as StoreKind[]) {
  describe(`openid-client against the provider (${kind} store)`, () => {
    let idp: TestIdentity | null = null;
    let web: client.Configuration;
    let machine: client.Configuration;

    before(async () => {
      const url = kind === 'postgres' ? await requireService({ skip: () => {} } as never, 'postgres') : null;
      if (kind === 'postgres' && !url) return;
      idp = await startTestIdentity({ store: kind, postgresUrl: url });
      const webClient = await idp.identity.clients.add({
        kind: 'web',
        clientId: 'shop-web',
        name: 'Shop',
        redirectUris: [REDIRECT],
        scopes: ['openid', 'offline_access', 'profile', 'orders'],
      });
      const machineClient = await idp.identity.clients.add({
        kind: 'machine',
        clientId: 'billing',
        scopes: ['orders'],
      });
      await idp.identity.accounts.create({ username: 'alice', password: PASSWORD, roles: ['customer'] });
      const options = { execute: [client.allowInsecureRequests] };
      web = await client.discovery(
        new URL(idp.issuer),
        'shop-web',
        { id_token_signed_response_alg: 'ES256' },
        client.ClientSecretBasic(webClient.secret!),
        options,
      );
      machine = await client.discovery(
        new URL(idp.issuer),
        'billing',
        undefined,
        client.ClientSecretBasic(machineClient.secret!),
        options,
      );
    });
    after(async () => {
      await idp?.close();
    });

    /** Skips (or fails under CI) when PostgreSQL is not reachable. */
    const ready = async (t: { skip(reason?: string): void }) => {
      if (idp) return true;
      await requireService(t as never, 'postgres');
      return false;
    };

    test('discovery: issuer metadata as the client sees it', async (t) => {
      if (!(await ready(t))) return;
      const meta = web.serverMetadata();
      assert.equal(meta.issuer, idp!.issuer);
      assert.equal(meta.jwks_uri, `${idp!.issuer}/jwks`);
      assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
      assert.equal(meta.authorization_response_iss_parameter_supported, true);
      assert.ok(meta.introspection_endpoint && meta.revocation_endpoint && meta.device_authorization_endpoint);
    });

    test('code flow with PKCE, then refresh rotation; reusing a rotated refresh token revokes the grant', async (t) => {
      if (!(await ready(t))) return;
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const authUrl = client.buildAuthorizationUrl(web, {
        redirect_uri: REDIRECT,
        scope: 'openid offline_access profile orders',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
        prompt: 'consent',
      });
      const signed = await signInAt(idp!.issuer, authUrl);
      const tokens = await client.authorizationCodeGrant(web, signed, {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
      });
      const idClaims = tokens.claims()!;
      assert.equal(idClaims.iss, idp!.issuer);
      assert.equal(idClaims['preferred_username'], 'alice');
      const at = decodeJwt(tokens.access_token);
      assert.equal(at.aud, TEST_AUDIENCE);
      assert.deepEqual(at['roles'], ['customer']);
      assert.equal(at['client_id'], 'shop-web');
      assert.ok(tokens.refresh_token);

      const rotated = await client.refreshTokenGrant(web, tokens.refresh_token!);
      assert.ok(rotated.refresh_token);
      assert.notEqual(rotated.refresh_token, tokens.refresh_token, 'rotated on use');
      assert.equal(decodeJwt(rotated.access_token).aud, TEST_AUDIENCE);
      const again = await client.refreshTokenGrant(web, rotated.refresh_token!);

      // The first refresh token was already used: presenting it again is a theft signal.
      await assert.rejects(client.refreshTokenGrant(web, tokens.refresh_token!), (err: unknown) => {
        assert.ok(err instanceof client.ResponseBodyError);
        assert.equal(err.error, 'invalid_grant');
        return true;
      });
      // …and the whole grant is gone: even the newest refresh token fails now.
      await assert.rejects(client.refreshTokenGrant(web, again.refresh_token!), (err: unknown) => {
        assert.ok(err instanceof client.ResponseBodyError);
        assert.equal(err.error, 'invalid_grant');
        return true;
      });
      assert.ok(idp!.audit.events.some((e) => e.type === 'identity.grant.revoked'));
    });

    test('concurrent refreshes with one token: one rotation wins, the rest revoke the grant', async (t) => {
      if (!(await ready(t))) return;
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const authUrl = client.buildAuthorizationUrl(web, {
        redirect_uri: REDIRECT,
        scope: 'openid offline_access orders',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        prompt: 'consent',
      });
      const tokens = await client.authorizationCodeGrant(web, await signInAt(idp!.issuer, authUrl), {
        pkceCodeVerifier: verifier,
        expectedState: state,
      });
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, () => client.refreshTokenGrant(web, tokens.refresh_token!)),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      assert.equal(won.length, 1);
      for (const r of results) {
        if (r.status === 'rejected') assert.equal((r.reason as client.ResponseBodyError).error, 'invalid_grant');
      }
    });

    test('client credentials', async (t) => {
      if (!(await ready(t))) return;
      const tokens = await client.clientCredentialsGrant(machine, { scope: 'orders' });
      const claims = decodeJwt(tokens.access_token);
      assert.equal(claims.sub, 'billing');
      assert.equal(claims['client_id'], 'billing');
      assert.equal(tokens.refresh_token, undefined, 'no refresh token for machines');
    });

    test('introspection and revocation of a refresh token', async (t) => {
      if (!(await ready(t))) return;
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const authUrl = client.buildAuthorizationUrl(web, {
        redirect_uri: REDIRECT,
        scope: 'openid offline_access orders',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        prompt: 'consent',
      });
      const tokens = await client.authorizationCodeGrant(web, await signInAt(idp!.issuer, authUrl), {
        pkceCodeVerifier: verifier,
        expectedState: state,
      });
      const active = await client.tokenIntrospection(web, tokens.refresh_token!);
      assert.equal(active.active, true);
      assert.equal(active.client_id, 'shop-web');
      assert.equal(active.sub, (await idp!.identity.accounts.getByUsername('alice'))!.id);
      assert.match(String(active.scope), /offline_access/);
      // Another client may not learn about this token (RFC 7662 §4).
      assert.equal((await client.tokenIntrospection(machine, tokens.refresh_token!)).active, false);

      await client.tokenRevocation(web, tokens.refresh_token!);
      assert.equal((await client.tokenIntrospection(web, tokens.refresh_token!)).active, false);
      await assert.rejects(client.refreshTokenGrant(web, tokens.refresh_token!), (err: unknown) => {
        assert.equal((err as client.ResponseBodyError).error, 'invalid_grant');
        return true;
      });
      assert.ok(idp!.audit.events.some((e) => e.type === 'identity.token.revoked'));
    });
  });
}

/** Drives the pages for an authorization URL built by openid-client; returns the callback URL. */
async function signInAt(issuer: string, authUrl: URL): Promise<URL> {
  const params = Object.fromEntries(authUrl.searchParams);
  const { callback } = await signIn(issuer, {
    clientId: params['client_id']!,
    redirectUri: params['redirect_uri']!,
    scope: params['scope']!,
    username: 'alice',
    password: PASSWORD,
    extra: params,
  });
  return callback;
}
