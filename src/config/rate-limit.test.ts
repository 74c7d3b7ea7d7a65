import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseRateLimit, RATE_LIMIT_REGEX_SOURCE } from './rate-limit.ts';

const UNIT_SECONDS: Record<string, number> = {
  s: 1,
  sec: 1,
  second: 1,
  m: 60,
  min: 60,
  minute: 60,
  h: 3600,
  hour: 3600,
  d: 86_400,
  day: 86_400,
};

/** The parser's one check beyond syntax: at most 1,000,000 requests per second for one key. */
const tooFast = (text: string) => {
  const parsed = parseRateLimit(text);
  return !parsed.ok && parsed.kind === 'tooFast';
};

const ok = (text: string) => {
  const parsed = parseRateLimit(text);
  assert.ok(parsed.ok, `${text}: ${parsed.ok ? '' : parsed.reason}`);
  return parsed.value;
};

describe('parseRateLimit', () => {
  test('count, period and key, normalized', () => {
    assert.deepEqual(ok('100/min per ip'), {
      limit: 100,
      periodMs: 60_000,
      key: { kind: 'ip' },
      source: '100/min per ip',
    });
    assert.deepEqual(ok('20/10s per subject'), {
      limit: 20,
      periodMs: 10_000,
      key: { kind: 'subject' },
      source: '20/10s per subject',
    });
    assert.deepEqual(ok('5/h per client').periodMs, 3_600_000);
    assert.deepEqual(ok('1/2day per ip').periodMs, 2 * 86_400_000);
    assert.deepEqual(ok('  7/second   per   ip  ').source, '7/second   per   ip');
  });

  test('every unit', () => {
    const table: [string, number][] = [
      ['s', 1000],
      ['sec', 1000],
      ['second', 1000],
      ['m', 60_000],
      ['min', 60_000],
      ['minute', 60_000],
      ['h', 3_600_000],
      ['hour', 3_600_000],
      ['d', 86_400_000],
      ['day', 86_400_000],
    ];
    for (const [unit, ms] of table) assert.equal(ok(`1/${unit} per ip`).periodMs, ms, unit);
  });

  test('header keys are lower-cased (header names are case-insensitive)', () => {
    assert.deepEqual(ok('10/min per header:X-Api-Key').key, { kind: 'header', name: 'x-api-key' });
  });

  test('rejects malformed rates with a reason and the syntax as hint', () => {
    const bad = [
      '',
      '100',
      '100/min',
      '100 per ip',
      '0/min per ip',
      '01/min per ip',
      '-1/min per ip',
      '1.5/min per ip',
      '1000000000/min per ip',
      '100/sek per ip',
      '100/MIN per ip',
      '100/0s per ip',
      '100/10 per ip',
      '100/ per ip',
      '100/10 s per ip',
      '100/min per',
      '100/min per everyone',
      '100/min per ip per ip',
      '100/min per header:',
      '100/min per header:Bad Name',
      '100/min per header:Authorization',
      '100/min per header:cookie',
      '100/min per header:PROXY-AUTHORIZATION',
      '100/min/ip',
    ];
    for (const text of bad) {
      const parsed = parseRateLimit(text);
      assert.equal(parsed.ok, false, text);
      if (!parsed.ok) {
        assert.ok(parsed.reason.length > 0);
        assert.ok(parsed.hint.length > 0);
      }
    }
  });

  test('suggests the unit or key that was probably meant', () => {
    const unit = parseRateLimit('20/sek per subject');
    assert.ok(!unit.ok && unit.reason.includes('`sec`'));
    const key = parseRateLimit('20/s per subjet');
    assert.ok(!key.ok && key.reason.includes('`subject`'));
  });

  test('the schema pattern accepts exactly what the parser accepts (table)', () => {
    const regex = new RegExp(RATE_LIMIT_REGEX_SOURCE, 'u');
    const samples = [
      '100/min per ip',
      '1/s per client',
      '999999999/999999day per header:a',
      '1/1s per header:Authorizations',
      '1/s per header:authorization',
      '1/s per header:Cookie',
      '1/s per header:x-cookie',
      '1/s  per\tip',
      ' 1/s per ip ',
      '1/s per ip x',
      '1/min per IP',
    ];
    for (const text of samples) {
      assert.equal(regex.test(text), parseRateLimit(text).ok || tooFast(text), JSON.stringify(text));
    }
  });

  test('the schema pattern accepts exactly what the parser accepts, but for rates too fast to store (property)', () => {
    const regex = new RegExp(RATE_LIMIT_REGEX_SOURCE, 'u');
    const piece = fc.constantFrom(
      '0',
      '1',
      '10',
      '007',
      '999999999',
      '1000000000',
      '/',
      's',
      'sec',
      'min',
      'minute',
      'hours',
      'd',
      'x',
      ' ',
      '  ',
      'per',
      ' per ',
      'ip',
      'subject',
      'client',
      'header:',
      'X-Key',
      'cookie',
      'Authorization',
      'proxy-authorization',
      '-',
      ':',
      '\t',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 9 }), (pieces) => {
        const text = pieces.join('');
        assert.equal(regex.test(text), parseRateLimit(text).ok || tooFast(text), JSON.stringify(text));
      }),
      { numRuns: 3000 },
    );
    // And well-formed ones generated directly.
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 999_999_999 }),
        fc.option(fc.integer({ min: 1, max: 999_999 }), { nil: undefined }),
        fc.constantFrom('s', 'sec', 'second', 'm', 'min', 'minute', 'h', 'hour', 'd', 'day'),
        fc.constantFrom('ip', 'subject', 'client', 'header:X-Api-Key'),
        (count, multiplier, unit, key) => {
          const text = `${count}/${multiplier ?? ''}${unit} per ${key}`;
          assert.ok(regex.test(text), text);
          const parsed = parseRateLimit(text);
          const seconds = (multiplier ?? 1) * UNIT_SECONDS[unit]!;
          if (count / seconds > 1_000_000) {
            assert.ok(tooFast(text), text);
            return;
          }
          assert.ok(parsed.ok, text);
          assert.equal(parsed.value.limit, count);
          assert.ok(Number.isSafeInteger(parsed.value.periodMs));
        },
      ),
    );
  });
});

test('rates faster than the limiter can represent per key are refused', () => {
  assert.equal(ok('1000000/s per ip').limit, 1_000_000);
  for (const text of [
    '1000001/s per ip',
    '999999999/s per ip',
    '2000/ms per ip'.replace('ms', 's').replace('2000', '1000001'),
  ]) {
    const parsed = parseRateLimit(text);
    assert.equal(parsed.ok, false, text);
  }
});
