import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { HEADER_NAME_REGEX_SOURCE, ORIGIN_REGEX_SOURCE, parseCorsHeader, parseOrigin } from './cors.ts';

describe('parseOrigin', () => {
  test('exact serialized origins and the lone wildcard are accepted as written', () => {
    for (const origin of [
      '*',
      'https://app.example.com',
      'https://app.example.com:8443',
      'https://xn--bcher-kva.example',
      'https://10.0.0.1',
      'https://[2001:db8::1]:8443',
      'http://localhost:5173',
      'http://127.0.0.1:3000',
      'http://[::1]:8080',
    ]) {
      assert.deepEqual(parseOrigin(origin), { ok: true, value: origin }, origin);
    }
  });

  /** Hostile or mistaken origins: each refused, with the canonical spelling as hint where there is one. */
  const REFUSED: [string, RegExp | null][] = [
    ['null', null],
    ['NULL', null],
    ['', null],
    ['app.example.com', null],
    ['//app.example.com', null],
    ['https:app.example.com', null],
    ['https://', null],
    ['https://app.example.com/', /write https:\/\/app\.example\.com$/],
    ['https://app.example.com/path', /write https:\/\/app\.example\.com$/],
    ['https://app.example.com?x=1', /write https:\/\/app\.example\.com$/],
    ['https://app.example.com#x', /write https:\/\/app\.example\.com$/],
    ['https://user:pw@app.example.com', /write https:\/\/app\.example\.com$/],
    ['https://App.Example.com', /write https:\/\/app\.example\.com$/],
    ['https://app.example.com:443', /write https:\/\/app\.example\.com$/],
    ['HTTPS://app.example.com', /write https:\/\/app\.example\.com$/],
    ['https://bücher.example', /write https:\/\/xn--bcher-kva\.example$/],
    ['http://app.example.com', /https:\/\/app\.example\.com/],
    ['http://10.0.0.1', /https:\/\/10\.0\.0\.1/],
    ['http://localhost.evil.com', null],
    ['https://*.example.com', null],
    ['https://*', null],
    ['*.example.com', null],
    ['**', null],
    ['ftp://app.example.com', null],
    ['file:///etc/passwd', null],
    ['javascript://alert(1)', null],
    ['chrome-extension://abcdef', null],
    [' https://app.example.com', null],
    ['https://app.example.com ', null],
    ['https://app example.com', null],
    ['https://app.example.com\u0000', null],
    ['https://app.example.com\r\nX-Injected: 1', null],
    ['https://a_b.example.com', null],
    [`https://${'a'.repeat(64)}.example.com`, null],
    [`https://${'a.'.repeat(200)}com`, null],
    ['https://app.example.com:99999', null],
    ['https://0x7f.0.0.1', null],
  ];
  for (const [origin, hint] of REFUSED) {
    test(`refuses ${JSON.stringify(origin).slice(0, 60)}`, () => {
      const parsed = parseOrigin(origin);
      assert.equal(parsed.ok, false);
      if (!parsed.ok && hint) assert.match(parsed.hint, hint);
    });
  }

  test('everything it accepts matches the published pattern (so editors never flag a valid origin)', () => {
    const pattern = new RegExp(ORIGIN_REGEX_SOURCE, 'u');
    const piece = fc.constantFrom(
      'https://',
      'http://',
      'a',
      'B',
      '.',
      '-',
      ':',
      '1',
      '[',
      ']',
      '/',
      '*',
      'localhost',
      '?',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), (parts) => {
        const text = parts.join('');
        if (parseOrigin(text).ok) assert.match(text, pattern);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseCorsHeader', () => {
  test('header names are accepted in any case and returned in lower case', () => {
    for (const [name, lower] of [
      ['Authorization', 'authorization'],
      ['content-type', 'content-type'],
      ['X-Api-Key', 'x-api-key'],
      ['traceparent', 'traceparent'],
    ]) {
      assert.deepEqual(parseCorsHeader(name!), { ok: true, value: lower });
    }
  });

  test('forbidden, internal, wildcard and malformed names are refused', () => {
    for (const name of [
      'cookie',
      'Cookie',
      'HOST',
      'set-cookie',
      'content-length',
      'transfer-encoding',
      'origin',
      'connection',
      'keep-alive',
      'access-control-request-method',
      'proxy-authorization',
      'Sec-Fetch-Site',
      'x-rampart-subject',
      'X-Rampart-Request',
      '*',
      '',
      'x api',
      'x:api',
      'x-api\r\nx: y',
      'é',
      '"x"',
    ]) {
      assert.equal(parseCorsHeader(name).ok, false, JSON.stringify(name));
    }
  });

  test('everything it accepts matches the published pattern', () => {
    const pattern = new RegExp(HEADER_NAME_REGEX_SOURCE, 'u');
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (text) => {
        if (parseCorsHeader(text).ok) assert.match(text, pattern);
      }),
    );
  });
});
