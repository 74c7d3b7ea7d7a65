import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { OPERATOR_FILES } from '../control/api/operator-access.ts';
import { isRampartError } from '../core/errors.ts';
import { FILE_LOCK_ERRORS } from '../core/file-lock.ts';
import { ControlPlaneFailure, holdDataDir } from './control-plane-client.ts';

test('holdDataDir: one holder at a time; a refusal says who holds it; released, it can be taken again', (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rampart-hold-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));

  const first = holdDataDir(dataDir);
  assert.throws(
    () => holdDataDir(dataDir),
    (err) =>
      err instanceof ControlPlaneFailure &&
      /in use by a starting control plane or another rampart command/.test(err.message),
  );
  // A control plane that has written its endpoint file is named.
  writeFileSync(
    join(dataDir, OPERATOR_FILES.endpoint),
    JSON.stringify({ pid: process.pid, port: 9, trustDomain: 't.test' }),
  );
  assert.throws(
    () => holdDataDir(dataDir),
    (err) => err instanceof ControlPlaneFailure && err.message.includes(`a control plane (pid ${process.pid}) runs`),
  );
  first.release();
  first.release(); // idempotent
  const again = holdDataDir(dataDir);
  again.release();
});

test('holdDataDir: a data directory that does not exist is refused with LOCK_ERR_UNUSABLE naming the file', () => {
  const missing = join(tmpdir(), `rampart-hold-missing-${process.pid}`, 'control');
  assert.throws(
    () => holdDataDir(missing),
    (err) => isRampartError(err, FILE_LOCK_ERRORS.unusable) && String(err.detail?.['file']).startsWith(missing),
  );
});
