import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULTS } from '../config/defaults.ts';
import { clientKey, normalizeIp, serverOptions } from './listener.ts';

describe('clientKey', () => {
  test('IPv4 clients count per address; IPv6 clients per /64', () => {
    const cases: [string, string][] = [
      ['127.0.0.1', '127.0.0.1'],
      ['::ffff:10.0.0.7', '10.0.0.7'],
      ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
      ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
      ['2001:0DB8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
      ['2001:db8::1', '2001:db8:0:0::/64'],
      ['::1', '0:0:0:0::/64'],
      ['fe80::1%eth0', 'fe80:0:0:0::/64'],
      ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
    ];
    for (const [address, key] of cases) assert.equal(clientKey(address), key, address);
  });

  test('addresses in one /64 share a key; the next /64 does not', () => {
    assert.equal(clientKey('2001:db8:a:b::1'), clientKey('2001:db8:a:b:ffff:ffff:ffff:ffff'));
    assert.notEqual(clientKey('2001:db8:a:b::1'), clientKey('2001:db8:a:c::1'));
  });

  test('normalizeIp only unwraps IPv4-mapped addresses', () => {
    assert.equal(normalizeIp('::ffff:1.2.3.4'), '1.2.3.4');
    assert.equal(normalizeIp('::ffff:abcd'), '::ffff:abcd');
    assert.equal(normalizeIp('1.2.3.4'), '1.2.3.4');
  });
});

describe('serverOptions', () => {
  test('the strict parser, no joined duplicates, and the manifest timeouts', () => {
    const limits = { ...DEFAULTS.gatewayLimits };
    const options = serverOptions(limits);
    assert.equal(options.insecureHTTPParser, false);
    assert.equal(options.requireHostHeader, false, 'hygiene refuses a missing Host, counted and recorded');
    assert.equal(options.joinDuplicateHeaders, false);
    assert.equal(options.maxHeaderSize, limits.maxHeaderBytes);
    assert.equal(options.headersTimeout, limits.headersTimeoutMs);
    assert.equal(options.requestTimeout, limits.requestTimeoutMs);
    assert.equal(options.keepAliveTimeout, limits.keepAliveTimeoutMs);
  });

  test('timeouts are swept often enough to honour them: a quarter of the shortest, within bounds', () => {
    const base = { ...DEFAULTS.gatewayLimits };
    assert.equal(serverOptions(base).connectionsCheckingInterval, 1_000);
    assert.equal(serverOptions({ ...base, headersTimeoutMs: 1_000 }).connectionsCheckingInterval, 250);
    assert.equal(
      serverOptions({ ...base, headersTimeoutMs: 100, requestTimeoutMs: 100 }).connectionsCheckingInterval,
      100,
    );
  });
});
