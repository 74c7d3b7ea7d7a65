/**
 * `tls: auto` without a control plane. The manifest cannot switch workload identity off (`rampart
 * start` always runs the control plane), so no manifest is invalid this way; the combination arises
 * only through the Launcher API (`workloadIdentity: false`, or a stand-in control plane) or a gateway
 * started by hand. The Launcher refuses it before anything starts, and the gateway process itself
 * refuses it once, with exit code 2 and one clear log line, instead of starting workers that each fail
 * with GW_ERR_TLS_AUTO until the pool gives up (and the launcher restarts it into the same loop).
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { Manifest } from '../../src/config/model.ts';
import { isRampartError } from '../../src/core/errors.ts';
import { Launcher } from '../../src/launcher/launcher.ts';
import { startGatewayProcess } from '../helpers/gateway-process.ts';
import { FIXTURE_ENTRIES, FIXTURE_SERVICE, handManifest, makeProject } from './project.ts';

const auto = (m: Manifest): Manifest => ({ ...m, gateway: { ...m.gateway, tls: { mode: 'auto', names: [] } } });
const streams = () => ({ stdout: new PassThrough(), stderr: new PassThrough() });

test('the Launcher refuses tls: auto without workload identity, before anything starts', (t) => {
  const manifest = auto(handManifest(makeProject(t), { a: {} }));
  const refusals: [string, () => unknown][] = [
    ['workloadIdentity: false', () => new Launcher(manifest, { ...streams(), workloadIdentity: false })],
    ['a stand-in control plane', () => new Launcher(manifest, { ...streams(), entries: { control: FIXTURE_SERVICE } })],
  ];
  for (const [name, make] of refusals) {
    assert.throws(make, (err) => isRampartError(err, 'LAUNCH_ERR_TLS_AUTO'), name);
  }
  // Not refused: with workload identity; without tls: auto; a stand-in gateway (no certificate needed).
  assert.ok(new Launcher(manifest, { ...streams() }));
  assert.ok(new Launcher(handManifest(makeProject(t), { a: {} }), { ...streams(), workloadIdentity: false }));
  assert.ok(new Launcher(manifest, { ...streams(), entries: FIXTURE_ENTRIES }));
});

test('the gateway process refuses tls: auto without a control plane once, exit code 2, no worker started', {
  timeout: 30_000,
}, async (t) => {
  const began = Date.now();
  const { child } = await startGatewayProcess(t, {
    manifest: (port) =>
      [
        'trustDomain: test.local',
        'gateway:',
        `  listen: { host: 127.0.0.1, port: ${port} }`,
        '  tls: auto',
        '  workers: 2',
        'identity:',
        '  external: { issuer: "https://issuer.test", jwksUri: "https://issuer.test/jwks" }',
        '  audience: https://api.test',
        'services:',
        '  echo:',
        '    run: services/echo.ts',
        '    routes:',
        '      - { id: public, path: /public/**, methods: [GET], auth: none }',
        '',
      ].join('\n'),
    upstreams: { echo: 'http://127.0.0.1:9' },
    readyTimeoutMs: false,
  });
  const status = await child.exited;
  const output = child.stdout() + child.stderr();
  assert.equal(status.code, 2, output);
  assert.ok(Date.now() - began < 15_000);
  const refusals = output.split('\n').filter((line) => line.includes('GW_ERR_TLS_AUTO'));
  assert.equal(refusals.length, 1, output);
  assert.match(refusals[0] ?? '', /"level":"fatal"/);
  assert.match(refusals[0] ?? '', /needs the control plane/);
  assert.doesNotMatch(output, /worker/i, 'no worker was started');
});
