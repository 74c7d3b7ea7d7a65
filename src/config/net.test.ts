import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkHost, isLoopbackHost, parseCidr } from './net.ts';

describe('parseCidr', () => {
  test('normalizes networks and single addresses', () => {
    const table: [string, string][] = [
      ['10.0.0.0/8', '10.0.0.0/8'],
      ['192.168.1.7', '192.168.1.7/32'],
      ['192.168.1.7/32', '192.168.1.7/32'],
      ['fd00::/8', 'fd00::/8'],
      ['FD00:0:0::/16', 'fd00::/16'],
      ['::1', '::1/128'],
      ['2001:db8::/32', '2001:db8::/32'],
      ['::ffff:10.0.0.0/104', '::ffff:a00:0/104'],
    ];
    for (const [input, expected] of table) {
      const parsed = parseCidr(input);
      assert.ok(parsed.ok, input);
      assert.equal(parsed.value, expected, input);
    }
  });

  test('rejects malformed, host-bit and catch-all CIDRs', () => {
    for (const input of [
      '',
      '10.0.0.0/',
      '10.0.0.0/33',
      '10.0.0.0/08',
      '10.0.0.0/x',
      '300.0.0.0/8',
      '10.0.0/8',
      'fe80::1%eth0',
      'fd00::/129',
      '10.1.2.3/8',
      'fd00::1/8',
      '0.0.0.0/0',
      '::/0',
      'localhost',
    ]) {
      assert.equal(parseCidr(input).ok, false, input);
    }
  });

  test('the host-bit hint names the network', () => {
    const parsed = parseCidr('10.1.2.3/16');
    assert.ok(!parsed.ok && parsed.hint?.includes('10.1.0.0/16'));
  });
});

describe('hosts', () => {
  test('loopback forms', () => {
    for (const host of [
      '127.0.0.1',
      '127.255.0.9',
      '::1',
      '0:0:0:0:0:0:0:1',
      'localhost',
      'LOCALHOST',
      '::ffff:127.0.0.1',
    ]) {
      assert.equal(isLoopbackHost(host), true, host);
    }
    for (const host of [
      '0.0.0.0',
      '::',
      '10.0.0.1',
      '128.0.0.1',
      '::2',
      '::ffff:10.0.0.1',
      'localhost.example.com',
      'example.com',
    ]) {
      assert.equal(isLoopbackHost(host), false, host);
    }
  });

  test('listen hosts are IP addresses or host names', () => {
    for (const host of ['127.0.0.1', '::', '0.0.0.0', 'localhost', 'gw-1.example.com']) {
      assert.equal(checkHost(host), undefined, host);
    }
    for (const host of ['1.2.3.400', '1.2.3', 'fe80::1%eth0', ':::', 'bad_host', '-x.example.com', 'a b']) {
      assert.equal(typeof checkHost(host), 'string', host);
    }
  });
});
