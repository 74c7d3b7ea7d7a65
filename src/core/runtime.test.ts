import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRampartError, newErrorId, RampartError } from './errors.ts';
import { RUNTIME_ENV, readRuntime } from './runtime.ts';

test('readRuntime accepts the launcher contract and refuses anything else', () => {
  const runtime = { kind: 'control', name: 'control', dataDir: '/d', adminPort: 1, manifestFile: '/m' };
  assert.deepEqual(readRuntime('control', { [RUNTIME_ENV]: JSON.stringify(runtime) }), runtime);
  const refused: [string, NodeJS.ProcessEnv][] = [
    ['unset', {}],
    ['not JSON', { [RUNTIME_ENV]: '{kind:' }],
    ['null', { [RUNTIME_ENV]: 'null' }],
    ['wrong kind', { [RUNTIME_ENV]: JSON.stringify({ ...runtime, kind: 'gateway' }) }],
  ];
  for (const [name, env] of refused) {
    assert.throws(
      () => readRuntime('control', env),
      (err) => isRampartError(err, 'CORE_ERR_RUNTIME'),
      name,
    );
  }
});

test('errors expose 4xx messages only, and ids are unguessable and log-friendly', () => {
  assert.equal(new RampartError('X', 'm', { status: 404 }).expose, true);
  assert.equal(new RampartError('X', 'm', { status: 500 }).expose, false);
  assert.equal(new RampartError('X', 'm').status, 500);
  const ids = new Set(Array.from({ length: 1000 }, () => newErrorId()));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{12}$/);
});
