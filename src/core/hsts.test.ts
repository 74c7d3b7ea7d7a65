import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hstsHeader, hstsPolicy } from './hsts.ts';

const YEAR = 31_536_000;
const PIN = `max-age=${YEAR}`;
const PIN_ALL = `max-age=${YEAR}; includeSubDomains`;
const FORGET = 'max-age=0';

test('hstsHeader: a table of hosts, with the edge names shop.example.com and api.example.com', () => {
  const policy = hstsPolicy(YEAR, ['shop.example.com', 'API.example.com', 'localhost', '127.0.0.1']);
  const cases: [string | undefined, string | null][] = [
    // DNS names the manifest gives the edge: their subdomains are ours.
    ['shop.example.com', PIN_ALL],
    ['shop.example.com:8443', PIN_ALL],
    ['SHOP.Example.COM:443', PIN_ALL],
    ['shop.example.com.', PIN_ALL],
    ['api.example.com', PIN_ALL],
    // Other DNS names: this host only.
    ['example.com', PIN],
    ['www.shop.example.com', PIN],
    ['other.test:8443', PIN],
    // localhost (RFC 6761): never pinned; an old pin is released.
    ['localhost', FORGET],
    ['localhost:8443', FORGET],
    ['LOCALHOST.', FORGET],
    ['app.localhost:8443', FORGET],
    ['a.b.localhost', FORGET],
    // IP literals: browsers ignore HSTS there (RFC 6797 §8.1.1).
    ['127.0.0.1', null],
    ['127.0.0.1:8443', null],
    ['10.1.2.3', null],
    ['[::1]', null],
    ['[::1]:8443', null],
    ['[2001:db8::1]:443', null],
    ['::1', null],
    // Not a host name: nothing (such requests are refused by hygiene anyway).
    [undefined, null],
    ['', null],
    [':8443', null],
    ['shop.example.com:', null],
    ['shop.example.com:84x3', null],
    ['shop.example.com:8443:1', null],
    ['[::1', null],
    ['sh op.example.com', null],
    ['shop_1.example.com', null],
    ['*.example.com', null],
    ['127.1', null],
    ['0x7f.1', null],
    ['shop..example.com', null],
    ['bücher.example', null],
    ['evil.com/x', null],
    ['evil.com\r\nset-cookie: a=b', null],
  ];
  for (const [host, expected] of cases) assert.equal(hstsHeader(host, policy), expected, JSON.stringify(host));
});

test('hstsHeader: certificate files (names unknown to the manifest) give every DNS name its subdomains', () => {
  const policy = hstsPolicy(YEAR, null);
  assert.equal(hstsHeader('shop.example.com', policy), PIN_ALL);
  assert.equal(hstsHeader('anything.test:8443', policy), PIN_ALL);
  assert.equal(hstsHeader('localhost', policy), FORGET);
  assert.equal(hstsHeader('app.localhost', policy), FORGET);
  assert.equal(hstsHeader('127.0.0.1', policy), null);
  assert.equal(hstsHeader('[::1]:8443', policy), null);
});

test('hstsHeader: max-age comes from the policy; 0 releases pins and never adds includeSubDomains', () => {
  assert.equal(hstsHeader('shop.example.com', hstsPolicy(300, ['shop.example.com'])), 'max-age=300; includeSubDomains');
  assert.equal(hstsHeader('other.test', hstsPolicy(300, ['shop.example.com'])), 'max-age=300');
  assert.equal(hstsHeader('shop.example.com', hstsPolicy(0, ['shop.example.com'])), FORGET);
  assert.equal(hstsHeader('shop.example.com', hstsPolicy(0, null)), FORGET);
});
