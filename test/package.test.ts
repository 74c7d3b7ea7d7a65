import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * The published package must work where Node does not strip types (inside node_modules): pack it,
 * install the tarball into a scratch project, and run the CLI and an SDK import from there.
 */
test('the packed package installs and runs from built JavaScript', { timeout: 240_000 }, (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'rampart-pack-'));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const run = (cmd: string, args: string[], cwd: string) =>
    execFileSync(cmd, args, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
      // execFileSync blocks the event loop, so the test's own timeout could never fire: bound each step.
      timeout: 180_000,
    });

  run('npm', ['pack', '--silent', '--pack-destination', scratch], root);
  const tarball = readdirSync(scratch).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack produced a tarball');
  const listing = run('tar', ['-tzf', join(scratch, tarball)], scratch);
  assert.match(listing, /package\/dist\/sdk\/index\.js/);
  assert.match(listing, /package\/dist\/sdk\/index\.d\.ts/);
  assert.doesNotMatch(listing, /package\/src\//, 'sources are not shipped: they would not run from node_modules');
  assert.doesNotMatch(listing, /\.test\.js/);

  const project = join(scratch, 'project');
  run('mkdir', ['-p', project], scratch);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
  run('npm', ['install', '--no-audit', '--no-fund', '--silent', join(scratch, tarball)], project);

  const help = run(join(project, 'node_modules', '.bin', 'rampart'), ['--help'], project);
  assert.match(help, /Usage: rampart <command>/);
  assert.match(help, /start/);

  writeFileSync(
    join(project, 'probe.mjs'),
    "import { service, RampartError } from 'rampart/sdk';\nconsole.log(typeof service, typeof RampartError);\n",
  );
  assert.equal(run(process.execPath, ['probe.mjs'], project).trim(), 'function function');
});
