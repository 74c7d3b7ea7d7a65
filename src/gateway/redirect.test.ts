import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { redirectLocation } from './redirect.ts';

const SERVED = new Set(['api.example.com', 'localhost', '127.0.0.1', '::1']);

function locate(host: string | string[] | undefined, url: string, httpsPort = 8443): string | null {
  const hosts = host === undefined ? [] : Array.isArray(host) ? host : [host];
  return redirectLocation(
    {
      headers: hosts.length > 0 ? { host: hosts[0] } : {},
      rawHeaders: hosts.flatMap((h) => ['Host', h]),
      url,
    },
    { allowHost: (name) => SERVED.has(name), httpsPort: () => httpsPort },
    8192,
  );
}

describe('redirectLocation', () => {
  test('same host and path on the HTTPS port', () => {
    const cases: [string, string, string, number?][] = [
      ['api.example.com', '/a/b?c=d', 'https://api.example.com:8443/a/b?c=d'],
      ['api.example.com:80', '/', 'https://api.example.com:8443/'],
      ['API.Example.COM', '/x', 'https://api.example.com:8443/x'],
      ['api.example.com', '/x', 'https://api.example.com/x', 443],
      ['127.0.0.1:8080', '/x', 'https://127.0.0.1:8443/x'],
      ['[::1]:8080', '/x', 'https://[::1]:8443/x'],
      ['localhost', "/a!$&'()*+,;=:@%20~", "https://localhost:8443/a!$&'()*+,;=:@%20~"],
    ];
    for (const [host, url, expected, port] of cases) assert.equal(locate(host, url, port), expected, host);
  });

  test('targets that are not a plain origin-form path redirect to /', () => {
    for (const url of [
      '//evil.test/x',
      '/\\evil.test',
      'http://evil.test/x',
      '*',
      'evil.test:443',
      `/${'a'.repeat(9000)}`,
    ]) {
      assert.equal(locate('localhost', url), 'https://localhost:8443/', url);
    }
  });

  test('hosts the gateway does not serve, or that do not parse, get no redirect', () => {
    const hostile = [
      'evil.test',
      'api.example.com.evil.test',
      'evil.test.api.example.com',
      'api.example.com@evil.test',
      'evil.test@api.example.com',
      'api.example.com/evil.test',
      'api.example.com\\evil.test',
      'api.example.com:443@evil.test',
      'api.example.com:x',
      'api.example.com:123456',
      'api.example.com.',
      'api%2eexample.com',
      'api.example.com evil.test',
      'api.example.com,evil.test',
      '[::2]',
      '[::1',
      '[evil.test]',
      '[::ffff:zz]',
      '127.0.0.1.',
      '',
      ' ',
    ];
    for (const host of hostile) assert.equal(locate(host, '/x'), null, JSON.stringify(host));
    assert.equal(locate(undefined, '/x'), null, 'no Host');
    assert.equal(locate(['localhost', 'evil.test'], '/x'), null, 'two Hosts');
    assert.equal(locate(['localhost', 'localhost'], '/x'), null, 'two identical Hosts');
  });
});
