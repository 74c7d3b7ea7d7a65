import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Runtime } from '../core/runtime.ts';
import { GATEWAY_HEAP_DEFAULTS } from '../gateway/process/defaults.ts';
import { childCommand, GATEWAY_HEAP_ARGS } from './command.ts';
import type { PlannedProcess } from './plan.ts';

function project(t: { after(fn: () => unknown): void }) {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'rampart-command-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'entry.ts'), '');
  mkdirSync(join(dir, '.rampart', 'x'), { recursive: true });
  return dir;
}

function plan(dir: string, kind: Runtime['kind']): PlannedProcess {
  const runtime = { kind, name: kind, dataDir: join(dir, '.rampart', 'x') } as unknown as Runtime;
  return { name: kind, kind, entry: join(dir, 'entry.ts'), runtime, env: {} };
}

test('the gateway, and no other process, gets the heap sizing, as Node options before its entry', (t) => {
  const dir = project(t);
  for (const kind of ['gateway', 'service', 'control', 'identity'] as const) {
    const { args } = childCommand(plan(dir, kind), { roots: [dir], dataRoot: join(dir, '.rampart'), fromSource: true });
    for (const flag of GATEWAY_HEAP_ARGS) {
      assert.equal(args.includes(flag), kind === 'gateway', `${kind}: ${flag}`);
      if (kind === 'gateway') assert.ok(args.indexOf(flag) < args.length - 1, 'before the entry file');
    }
  }
  assert.ok(GATEWAY_HEAP_ARGS.includes(`--max-semi-space-size=${GATEWAY_HEAP_DEFAULTS.maxSemiSpaceMb}`));
  assert.ok(GATEWAY_HEAP_ARGS.includes(`--heap-growing-percent=${GATEWAY_HEAP_DEFAULTS.heapGrowingPercent}`));
});

test('this Node accepts the heap flags and they bound the young generation', () => {
  // An unknown V8 flag would stop the gateway at start (Node exits 9): a Node upgrade that drops one
  // fails here first. Then: the young generation under steady garbage stays within its two semi-spaces.
  const script = `
    const { getHeapSpaceStatistics } = require('node:v8');
    let max = 0, keep = [];
    for (let i = 0; i < 200000; i++) {
      keep.push({ i, s: 'x'.repeat(64) + i });
      if (keep.length > 1000) keep = [];
      if (i % 1000 === 0) {
        const n = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
        max = Math.max(max, n.space_size);
      }
    }
    process.stdout.write(String(max));`;
  const out = execFileSync(process.execPath, [...GATEWAY_HEAP_ARGS, '-e', script], { encoding: 'utf8' });
  const limit = 2 * GATEWAY_HEAP_DEFAULTS.maxSemiSpaceMb * 1024 * 1024;
  assert.ok(Number(out) > 0 && Number(out) <= limit, `new space ${out} bytes ≤ ${limit}`);
});
