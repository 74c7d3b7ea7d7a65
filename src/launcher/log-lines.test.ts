import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineSplitter, MAX_LINE, prettyLine } from './log-lines.ts';

test('LineSplitter: lines across chunks, CRLF, UTF-8 split inside a character, the rest at end', () => {
  const splitter = new LineSplitter();
  const euro = Buffer.from('€');
  assert.deepEqual(splitter.push(Buffer.from('one\ntw')), ['one']);
  assert.deepEqual(splitter.push(Buffer.concat([Buffer.from('o '), euro.subarray(0, 1)])), []);
  assert.deepEqual(splitter.push(Buffer.concat([euro.subarray(1), Buffer.from('\r\nthree')])), ['two €']);
  assert.deepEqual(splitter.end(), ['three']);
  assert.deepEqual(splitter.end(), []);
});

test('LineSplitter: a line longer than MAX_LINE is cut, not buffered without bound', () => {
  const splitter = new LineSplitter();
  const lines = splitter.push('x'.repeat(MAX_LINE * 2 + 5));
  assert.deepEqual(
    lines.map((l) => l.length),
    [MAX_LINE, MAX_LINE],
  );
  assert.deepEqual(splitter.end(), ['xxxxx']);
});

const plain = { width: 8, color: false, index: 0 };

test('prettyLine renders pino JSON: time, padded name, level, message, fields', () => {
  const time = new Date(2026, 0, 2, 12, 0, 1).toISOString();
  const line = JSON.stringify({
    level: 'info',
    time,
    pid: 1,
    hostname: 'h',
    name: 'catalog',
    msg: 'listening',
    port: 4100,
    host: '127.0.0.1',
    tag: 'two words',
  });
  assert.equal(
    prettyLine('catalog', line, plain),
    '12:00:01 catalog  │ info  listening port=4100 host=127.0.0.1 tag="two words"',
  );
  const numeric = JSON.stringify({ level: 50, time: new Date(2026, 0, 2, 9, 5, 7).getTime(), msg: 'boom' });
  assert.equal(prettyLine('orders', numeric, plain), '09:05:07 orders   │ error boom');
});

test('prettyLine: errors show their message and their stack below', () => {
  const line = JSON.stringify({
    level: 'error',
    time: 0,
    msg: 'failed',
    err: { message: 'nope', stack: 'Error: nope\n    at x (a.ts:1:1)' },
  });
  const [first, second] = prettyLine('orders', line, plain).split('\n');
  assert.match(first!, /│ error failed err=nope$/);
  assert.equal(second, `${' '.repeat(8)} ${' '.repeat(8)} │     at x (a.ts:1:1)`);
});

test('prettyLine: other lines pass through prefixed; escape sequences in JSON values are neutralized', () => {
  assert.equal(prettyLine('catalog', 'Error: plain text', plain), '         catalog  │ Error: plain text');
  assert.equal(prettyLine('catalog', '{not json', plain), '         catalog  │ {not json');
  const hostile = JSON.stringify({ level: 'info', time: 0, msg: 'a\u001b[2Jb', x: 'c\u0007' });
  const out = prettyLine('catalog', hostile, plain);
  assert.ok(!out.includes('\u001b') && !out.includes('\u0007'), out);
  assert.match(out, /a\\x1b\[2Jb/);
});

test('prettyLine colors only when asked', () => {
  const line = JSON.stringify({ level: 'warn', time: 0, msg: 'm' });
  assert.ok(!prettyLine('a', line, plain).includes('\u001b['));
  const colored = prettyLine('a', line, { ...plain, color: true });
  assert.ok(colored.includes('\u001b[33mwarn '), colored);
});
