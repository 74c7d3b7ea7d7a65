import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from './config-error.ts';
import { formatIssues } from './format.ts';
import { parseManifest } from './load.ts';
import type { ConfigIssue } from './model.ts';

const issue = (over: Partial<ConfigIssue> = {}): ConfigIssue => ({
  code: 'CFG_ERR_RATE',
  file: '/work/shop/rampart.yaml',
  line: 14,
  column: 9,
  path: 'services.orders.routes[0].rateLimit',
  message: 'invalid rate limit',
  hint: 'write it like this',
  ...over,
});

describe('formatIssues', () => {
  test('file:line:column relative to cwd, the path, the message, the code, and an indented hint', () => {
    const text = formatIssues([issue()], { color: false, cwd: '/work' });
    const [first, second, end] = text.split('\n');
    assert.ok(first!.startsWith('shop/rampart.yaml:14:9  services.orders.routes[0].rateLimit  '));
    assert.ok(first!.endsWith('[CFG_ERR_RATE]'));
    assert.ok(second!.startsWith('    hint: '));
    assert.equal(end, '');
  });

  test('no hint line without a hint, no path column without a path', () => {
    const text = formatIssues([issue({ hint: undefined, path: '' })], { color: false, cwd: '/work/shop' });
    assert.equal(text.split('\n').length, 2);
    assert.match(text, /^rampart\.yaml:14:9 {2}\S/);
  });

  test('colors only when asked', () => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for ANSI escapes
    const ansi = /\u001b\[/;
    assert.doesNotMatch(formatIssues([issue()], { color: false, cwd: '/' }), ansi);
    assert.match(formatIssues([issue()], { color: true, cwd: '/' }), ansi);
  });

  test('nothing to print for no issues', () => {
    assert.equal(formatIssues([], { color: false }), '');
  });

  test('terminal escapes written in the manifest are printed escaped, never raw', () => {
    const text =
      'trustDomain: shop.local\ngateway:\n  tls: off\nidentity:\n  builtin: {}\nservices:\n  catalog:\n    run: c.ts\n"\\e[2Jx": 1\n';
    let issues: readonly ConfigIssue[] = [];
    try {
      parseManifest(text, '/tmp/rampart.yaml', { checkFiles: false });
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      issues = err.issues;
    }
    assert.equal(issues.length, 1);
    const out = formatIssues(issues, { color: false, cwd: '/tmp' });
    assert.ok(!out.includes('\u001b'), out);
    assert.ok(out.includes('\\u001b'), out);
  });
});
