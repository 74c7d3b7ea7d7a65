import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isRampartError } from './errors.ts';
import { FILE_LOCK_ERRORS, tryLockFile } from './file-lock.ts';

const dir = mkdtempSync(join(tmpdir(), 'rampart-file-lock-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A child process that takes the lock on `file` and holds it until killed; resolves with what it saw. */
function holder(file: string) {
  const source = `import { tryLockFile } from ${JSON.stringify(new URL('./file-lock.ts', import.meta.url).href)};
const lock = tryLockFile(${JSON.stringify(file)});
process.stdout.write(lock ? 'held\\n' : 'busy\\n');
setInterval(() => {}, 60_000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const said = new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()));
    child.once('exit', (code) => reject(new Error(`holder exited (${code}) before taking the lock`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, said, exited };
}

describe('tryLockFile', () => {
  test('one holder in a process: the second attempt gets null until the first releases (idempotently)', () => {
    const file = join(dir, 'same.lock');
    const first = tryLockFile(file);
    assert.ok(first);
    assert.equal(tryLockFile(file), null);
    first.release();
    first.release();
    const again = tryLockFile(file);
    assert.ok(again, 'taken again after release');
    again.release();
  });

  test('one holder across processes, and a holder killed with SIGKILL leaves the lock free', async () => {
    const file = join(dir, 'other.lock');
    const first = holder(file);
    let second: ReturnType<typeof holder> | null = null;
    let lock: ReturnType<typeof tryLockFile> = null;
    try {
      assert.equal(await first.said, 'held');
      assert.equal(tryLockFile(file), null, 'refused while another process holds it');
      first.child.kill('SIGKILL');
      await first.exited;
      lock = tryLockFile(file);
      assert.ok(lock, 'the kernel dropped the dead holder’s lock');
      // And this process's lock keeps another process out.
      second = holder(file);
      assert.equal(await second.said, 'busy');
    } finally {
      // Killed whatever failed: a live holder would keep the test runner waiting.
      for (const h of [first, second]) h?.child.kill('SIGKILL');
      lock?.release();
    }
  });

  const garbage = join(dir, 'garbage');
  writeFileSync(garbage, 'not a lock file: text where SQLite expects its header, '.repeat(4));
  const unusable: Array<[string, string]> = [
    ['a directory', dir],
    ['a file in a directory that does not exist', join(dir, 'missing', 'x.lock')],
    ['a file that holds something else', garbage],
  ];
  for (const [what, file] of unusable) {
    test(`refuses ${what} with LOCK_ERR_UNUSABLE naming the file`, () => {
      assert.throws(
        () => tryLockFile(file),
        (err) => isRampartError(err, FILE_LOCK_ERRORS.unusable) && err.detail?.['file'] === file,
      );
    });
  }
});
