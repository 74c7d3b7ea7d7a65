import assert from 'node:assert/strict';
import { test } from 'node:test';
import { issuerHsts } from './http-security.ts';

test('issuerHsts: decided once from the issuer, by the rules the gateway uses', () => {
  const cases: [string, number | undefined, string | null][] = [
    // The default builtin issuer: plain HTTP on loopback, never HSTS (RFC 6797 §7.2).
    ['http://127.0.0.1:8444', undefined, null],
    ['http://idp.example.com', undefined, null],
    ['https://idp.example.com', undefined, 'max-age=31536000; includeSubDomains'],
    ['https://IDP.example.com:8443/oidc', undefined, 'max-age=31536000; includeSubDomains'],
    ['https://idp.example.com', 600, 'max-age=600; includeSubDomains'],
    ['https://idp.example.com', 0, 'max-age=0'],
    ['https://localhost:8444', undefined, 'max-age=0'],
    ['https://id.localhost', undefined, 'max-age=0'],
    ['https://127.0.0.1:8444', undefined, null],
    ['https://[::1]:8444', undefined, null],
  ];
  for (const [issuer, maxAge, expected] of cases) assert.equal(issuerHsts(new URL(issuer), maxAge), expected, issuer);
});
