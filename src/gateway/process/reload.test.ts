import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import { ConfigError } from '../../config/config-error.ts';
import type { Manifest } from '../../config/model.ts';
import { Registry } from '../../core/metrics.ts';
import type { ReconfigureOutcome } from './messages.ts';
import { ConfigReloader, manifestHash } from './reload.ts';

/** Distinct manifests, as far as the reloader can tell (it hashes and compares `gateway` settings). */
function manifest(routes: number, rateLimit = 'memory'): Manifest {
  return {
    gateway: { listen: { host: '127.0.0.1', port: 1 }, admin: { port: 0 }, rateLimit: { store: rateLimit } },
    routes: Array.from({ length: routes }, (_, i) => ({ id: `r${i}` })),
  } as unknown as Manifest;
}

const OK: ReconfigureOutcome = { error: null, restartRequired: [] };

function setUp(options: { load: () => Manifest; apply?: (m: Manifest) => Promise<Map<number, ReconfigureOutcome>> }) {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const registry = new Registry();
  const applied: Manifest[] = [];
  const initial = manifest(1);
  const reloader = new ConfigReloader({
    file: '/nonexistent/rampart.yaml',
    initial,
    load: options.load,
    apply:
      options.apply ??
      (async (m) => {
        applied.push(m);
        return new Map([
          [0, OK],
          [1, OK],
        ]);
      }),
    logger,
    registry,
  });
  const metric = async (name: string, labels: Record<string, string> = {}) =>
    (await registry.getSingleMetric(name)!.get()).values
      .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
      .reduce((sum, v) => sum + v.value, 0);
  return { reloader, lines, applied, initial, metric, registry };
}

describe('configuration reloader', () => {
  test('a valid new manifest is applied: generation, hash and counters move', async () => {
    const next = manifest(2);
    const { reloader, applied, metric, registry } = setUp({ load: () => next });
    assert.equal(await reloader.reload('signal'), 'success');
    assert.deepEqual(applied, [next]);
    assert.equal(reloader.current, next);
    assert.equal(reloader.hash, manifestHash(next));
    assert.equal(await metric('rampart_gateway_config_generation'), 2);
    assert.equal(await metric('rampart_gateway_config_reload_total', { result: 'success' }), 1);
    const info = (await registry.getSingleMetric('rampart_gateway_config_info')!.get()).values;
    assert.deepEqual(
      info.map((v) => v.labels['sha256']),
      [manifestHash(next)],
      'one series: the configuration in force',
    );
  });

  test('an invalid manifest is refused: nothing applied, issues logged, the last good one stays', async () => {
    const issue = {
      code: 'CFG_ERR_UNKNOWN_KEY',
      file: '/x/rampart.yaml',
      line: 3,
      column: 1,
      path: 'gatewy',
      message: 'unknown key',
    };
    const { reloader, applied, initial, metric, lines } = setUp({
      load: () => {
        throw new ConfigError([issue]);
      },
    });
    assert.equal(await reloader.reload('signal'), 'error');
    assert.deepEqual(applied, []);
    assert.equal(reloader.current, initial);
    assert.equal(await metric('rampart_gateway_config_reload_total', { result: 'error' }), 1);
    assert.equal(await metric('rampart_gateway_config_last_reload_successful'), 0);
    const logged = lines.find((l) => l['msg'] === 'manifest reload refused: keeping the last good configuration');
    assert.deepEqual(logged?.['codes'], ['CFG_ERR_UNKNOWN_KEY']);
    assert.match(String(logged?.['issues']), /rampart\.yaml:3:1\s+gatewy\s+unknown key/);
  });

  test('the same manifest again is "unchanged": nothing sent to the workers', async () => {
    const { reloader, applied, initial, metric } = setUp({ load: () => structuredClone(manifest(1)) });
    assert.equal(await reloader.reload(), 'unchanged');
    assert.deepEqual(applied, []);
    assert.equal(reloader.current, initial);
    assert.equal(await metric('rampart_gateway_config_reload_total', { result: 'unchanged' }), 1);
  });

  test('a worker that cannot swap puts every worker back on the last good configuration', async () => {
    const sent: Manifest[] = [];
    const next = manifest(3);
    const { reloader, initial, metric } = setUp({
      load: () => next,
      apply: async (m) => {
        sent.push(m);
        return new Map([
          [0, OK],
          [1, m === next ? { error: 'GW_ERR_RECONFIGURE', restartRequired: [] } : OK],
        ]);
      },
    });
    assert.equal(await reloader.reload(), 'error');
    assert.deepEqual(sent, [next, initial], 'rolled back');
    assert.equal(reloader.current, initial);
    assert.equal(await metric('rampart_gateway_config_generation'), 1);
  });

  test('settings that need a restart are named once, from the workers and the main thread', async () => {
    const next = manifest(2, 'redis');
    const { reloader, lines } = setUp({
      load: () => next,
      apply: async () =>
        new Map([
          [0, { error: null, restartRequired: ['gateway.listen'] }],
          [1, { error: null, restartRequired: ['gateway.listen'] }],
        ]),
    });
    assert.equal(await reloader.reload(), 'success');
    const warning = lines.find(
      (l) => l['msg'] === 'these settings changed but take effect only when the gateway restarts',
    );
    assert.deepEqual(warning?.['settings'], ['gateway.listen', 'gateway.rateLimit']);
  });

  test('triggers during a reload are coalesced into one more reload', async () => {
    let loads = 0;
    let gate = Promise.withResolvers<void>();
    const { reloader } = setUp({
      load: () => manifest(10 + ++loads),
      apply: async () => {
        await gate.promise;
        return new Map([[0, OK]]);
      },
    });
    const first = reloader.reload();
    const rest = Array.from({ length: 5 }, () => reloader.reload());
    gate.resolve();
    gate = Promise.withResolvers<void>();
    gate.resolve();
    await Promise.all([first, ...rest]);
    assert.equal(loads, 2);
  });

  test('watching: a save by rename-over reloads, and so does the next one (the watch follows the path)', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-reload-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'rampart.yaml');
    writeFileSync(file, 'v0');
    let loads = 0;
    const lines: Record<string, unknown>[] = [];
    const reloader = new ConfigReloader({
      file,
      initial: manifest(1),
      load: () => manifest(100 + ++loads),
      apply: async () => new Map([[0, OK]]),
      logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) }),
      registry: new Registry(),
      debounceMs: 20,
    });
    t.after(() => reloader.close());
    reloader.watch();
    const save = (text: string) => {
      writeFileSync(`${file}.tmp`, text);
      renameSync(`${file}.tmp`, file);
    };
    const until = async (n: number) => {
      for (let i = 0; i < 200 && loads < n; i++) await delay(10);
    };
    save('v1');
    await until(1);
    assert.ok(loads >= 1, 'first save reloaded');
    const after = loads;
    await delay(100); // the watch is re-armed on the new file
    save('v2');
    await until(after + 1);
    assert.ok(loads > after, 'second save reloaded too');
    assert.ok(lines.some((l) => l['trigger'] === 'file' && l['msg'] === 'manifest reloaded'));
  });
});
