import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../core/logger.ts';
import { ConfigError } from './config-error.ts';
import { ManifestWatcher, manifestIssueFields } from './watch-manifest.ts';

const logger = createLogger({ name: 'test', level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'rampart-watch-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A watcher on a fresh file (written unless `create` is false) that counts its `onChange` calls. */
function setup(create = true) {
  const file = join(dir, `manifest-${n++}.yaml`);
  if (create) writeFileSync(file, 'version: 1\n');
  const changes = { count: 0 };
  const watcher = new ManifestWatcher({
    file,
    onChange: () => {
      changes.count += 1;
    },
    debounceMs: 50,
    rewatchMs: 50,
    logger,
  });
  return { file, changes, watcher };
}

/** Waits until `predicate` holds (fs events take their time), or fails after 5 s. */
async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('ManifestWatcher', () => {
  test('a burst of writes is one change after the debounce', async () => {
    const { file, changes, watcher } = setup();
    watcher.watch();
    for (let i = 0; i < 5; i++) writeFileSync(file, `version: ${i}\n`);
    await until(() => changes.count > 0, 'the change');
    await sleep(200);
    watcher.close();
    assert.equal(changes.count, 1);
  });

  test('an editor-style save (rename over the file) is seen, and so are edits after it', async () => {
    const { file, changes, watcher } = setup();
    watcher.watch();
    const temp = `${file}.swp`;
    writeFileSync(temp, 'version: 2\n');
    renameSync(temp, file);
    await until(() => changes.count > 0, 'the renamed save');
    await sleep(200); // the rewatch has happened
    const seen = changes.count;
    writeFileSync(file, 'version: 3\n');
    await until(() => changes.count > seen, 'an edit after the rename');
    watcher.close();
  });

  test('a file that does not exist yet is watched once it appears', async () => {
    const { file, changes, watcher } = setup(false);
    watcher.watch();
    await sleep(100);
    writeFileSync(file, 'version: 1\n');
    await until(() => changes.count > 0, 'the new file');
    await sleep(300);
    // Watching now: no more changes without a write, and a write is seen.
    const seen = changes.count;
    await sleep(300);
    assert.equal(changes.count, seen);
    writeFileSync(file, 'version: 2\n');
    await until(() => changes.count > seen, 'an edit of the new file');
    watcher.close();
  });

  test('close() drops a pending change and stops watching; watch() after close does nothing', async () => {
    const { file, changes, watcher } = setup();
    watcher.watch();
    writeFileSync(file, 'version: 2\n');
    watcher.close();
    watcher.watch();
    writeFileSync(file, 'version: 3\n');
    await sleep(300);
    assert.equal(changes.count, 0);
  });
});

describe('manifestIssueFields', () => {
  test('a refused manifest gives every issue code and the issues relative to its folder', () => {
    const file = join(dir, 'rampart.yaml');
    const issue = (code: string, line: number) => ({ code, path: 'services', message: 'm', file, line, column: 1 });
    const fields = manifestIssueFields(new ConfigError([issue('CFG_ERR_A', 1), issue('CFG_ERR_B', 2)]), file);
    assert.deepEqual(fields?.codes, ['CFG_ERR_A', 'CFG_ERR_B']);
    assert.ok(fields?.issues.includes('rampart.yaml:1:1'), fields?.issues);
    assert.ok(!fields?.issues.includes(dir), 'paths are relative to the manifest folder');
  });

  test('anything else is not an issue list', () => {
    for (const err of [new Error('EACCES'), 'CFG_ERR_INVALID', undefined, null, { issues: [] }]) {
      assert.equal(manifestIssueFields(err, join(dir, 'rampart.yaml')), null);
    }
  });
});
