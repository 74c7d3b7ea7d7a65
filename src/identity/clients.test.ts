import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRampartError } from '../core/errors.ts';
import { type ClientInput, clientMetadata, DEVICE_CODE_GRANT } from './clients.ts';

const refused = (input: ClientInput, field?: string) =>
  assert.throws(
    () => clientMetadata(input),
    (err) => isRampartError(err, 'IDP_ERR_INVALID_CLIENT') && (field === undefined || err.detail?.['field'] === field),
  );

test('each client kind fixes its grant types and authentication', () => {
  const web = clientMetadata({ kind: 'web', redirectUris: ['https://app.test/cb'], scopes: ['openid', 'orders'] });
  assert.deepEqual(web['grant_types'], ['authorization_code', 'refresh_token']);
  assert.equal(web['token_endpoint_auth_method'], 'client_secret_basic');
  assert.deepEqual(web['response_types'], ['code']);
  const native = clientMetadata({ kind: 'native', redirectUris: ['http://127.0.0.1/cb'], scopes: ['openid'] });
  assert.deepEqual(native['grant_types'], ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT]);
  assert.equal(native['token_endpoint_auth_method'], 'none');
  assert.equal(native['application_type'], 'native');
  const machine = clientMetadata({ kind: 'machine', scopes: ['orders'] });
  assert.deepEqual(machine['grant_types'], ['client_credentials']);
  assert.deepEqual(machine['response_types'], []);
  for (const m of [web, native, machine]) {
    assert.ok(!(m['grant_types'] as string[]).includes('implicit'));
    assert.ok(!(m['grant_types'] as string[]).includes('password'));
  }
});

const HOSTILE_REDIRECTS: [ClientInput['kind'], string, string][] = [
  ['web', 'http://app.test/cb', 'plain http for a web client'],
  ['web', 'http://127.0.0.1/cb', 'loopback http for a web client'],
  ['web', 'https://app.test/cb#frag', 'fragment'],
  ['web', 'https://app.test/cb#', 'empty fragment'],
  ['web', 'https://user:pw@app.test/cb', 'credentials in the URI'],
  ['web', 'HTTPS://APP.test/cb', 'non-canonical form'],
  ['web', 'https://app.test/a/../cb', 'dot segments'],
  ['web', 'javascript:alert(1)', 'javascript scheme'],
  ['web', 'data:text/html,hi', 'data scheme'],
  ['web', '', 'empty'],
  ['web', 'not a url', 'not a URL'],
  ['web', `https://app.test/${'a'.repeat(2100)}`, 'too long'],
  ['native', 'http://localhost:8080/cb', 'localhost instead of the loopback literal (RFC 8252 §8.3)'],
  ['native', 'http://192.168.1.2/cb', 'http to a non-loopback host'],
  ['native', 'http://127.0.0.1.evil.test/cb', 'loopback-looking host name'],
  ['native', 'https://127.0.0.1/cb', 'https on loopback'],
  ['native', 'myapp:/cb', 'private-use scheme without a domain'],
  ['native', 'javascript:alert(1)', 'javascript scheme'],
];

for (const [kind, uri, why] of HOSTILE_REDIRECTS) {
  test(`redirect URI refused for a ${kind} client: ${why}`, () => {
    refused({ kind, redirectUris: [uri], scopes: [] }, 'redirectUris[0]');
  });
}

test('acceptable redirect URIs', () => {
  for (const [kind, uri] of [
    ['web', 'https://app.test/cb'],
    ['web', 'https://app.test:8443/auth/callback?x=1'],
    ['native', 'http://127.0.0.1/cb'],
    ['native', 'http://127.0.0.1:53111/cb'],
    ['native', 'http://[::1]:8080/cb'],
    ['native', 'com.example.app:/oauth2redirect'],
    ['native', 'https://app.example/native-cb'],
  ] as const) {
    const m = clientMetadata({ kind, redirectUris: [uri], scopes: [] });
    assert.deepEqual(m['redirect_uris'], [uri]);
  }
});

test('other refusals: kind, shape, scopes, names', () => {
  refused({ kind: 'machine', redirectUris: ['https://app.test/cb'], scopes: [] }, 'redirectUris');
  refused({ kind: 'web', scopes: [] }, 'redirectUris');
  refused({ kind: 'spa' as never, scopes: [] }, 'kind');
  refused({ kind: 'machine', scopes: ['two words'] }, 'scopes');
  refused({ kind: 'machine', scopes: ['quote"'] }, 'scopes');
  refused({ kind: 'machine', scopes: ['back\\slash'] }, 'scopes');
  refused({ kind: 'machine', scopes: Array.from({ length: 51 }, (_, i) => `s${i}`) }, 'scopes');
  refused({ kind: 'machine', scopes: [], name: 'bad\u0000name' }, 'name');
  refused({ kind: 'machine', scopes: [], name: 'x'.repeat(101) }, 'name');
  refused({ kind: 'web', redirectUris: Array.from({ length: 11 }, (_, i) => `https://a.test/${i}`), scopes: [] });
});
