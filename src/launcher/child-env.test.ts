import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRampartError } from '../core/errors.ts';
import type { ServiceRuntime } from '../core/runtime.ts';
import { childEnv } from './child-env.ts';

const runtime = { kind: 'service', name: 'orders' } as ServiceRuntime;

test('child env: the allow-listed variables, the manifest env, RAMPART_RUNTIME; nothing else', () => {
  const parent = {
    PATH: '/bin',
    HOME: '/home/u',
    LANG: 'en_US.UTF-8',
    NODE_ENV: 'development',
    AWS_SECRET_ACCESS_KEY: 'x',
    GITHUB_TOKEN: 'y',
    NODE_OPTIONS: '--allow-fs-read=*',
    RAMPART_LOG_LEVEL: 'debug',
  };
  assert.deepEqual(childEnv(runtime, { MODE: 'demo' }, parent), {
    PATH: '/bin',
    HOME: '/home/u',
    LANG: 'en_US.UTF-8',
    NODE_ENV: 'development',
    MODE: 'demo',
    RAMPART_RUNTIME: JSON.stringify(runtime),
  });
});

test('child env: manifest keys that would change how the process starts are refused', () => {
  for (const name of [
    'NODE_OPTIONS',
    'NODE_PATH',
    'RAMPART_RUNTIME',
    'RAMPART_X',
    'LD_PRELOAD',
    'DYLD_INSERT_LIBRARIES',
  ]) {
    assert.throws(
      () => childEnv(runtime, { [name]: 'x' }, {}),
      (err) => isRampartError(err, 'LAUNCH_ERR_ENV') && err.message.includes(`services.orders.env.${name}`),
      name,
    );
  }
  assert.equal(childEnv(runtime, { NODE_ENV: 'production' }, { NODE_ENV: 'development' })['NODE_ENV'], 'production');
});
