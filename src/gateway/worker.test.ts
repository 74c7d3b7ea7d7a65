import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { makeCertificate } from '../../test/helpers/certificates.ts';
import { RUN_FILE, testManifest } from '../../test/helpers/gateway-harness.ts';
import { SharedRateLimitTable } from './rate-limit/shared-table.ts';
import { serveGatewayWorker } from './worker.ts';

function listenOn(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

test('a start that fails after the public listener is bound releases it (an in-thread worker would keep serving)', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rampart-worker-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  // A free port for the public listener, and a taken one for the redirect listener: listen() binds
  // the first, then fails on the second.
  const probe = createServer();
  const publicPort = await listenOn(probe, 0);
  await close(probe);
  const taken = createServer();
  const takenPort = await listenOn(taken, 0);
  t.after(() => close(taken));

  const certificate = await makeCertificate({ dns: ['localhost'] });
  const manifest = testManifest(
    `
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: ${publicPort} }
  tls: auto
identity:
  external: { issuer: "https://issuer.test", jwksUri: "https://issuer.test/jwks" }
  audience: https://api.test
services:
  echo:
    run: ${RUN_FILE}
    routes:
      - { id: public, path: /public/**, methods: [GET], auth: none }
`,
    { redirectHttp: { port: takenPort } },
  );
  const { port1, port2 } = new MessageChannel();
  t.after(() => {
    port1.close();
    port2.close();
  });
  await assert.rejects(
    serveGatewayWorker(
      port2,
      {
        index: 0,
        runtime: {
          kind: 'gateway',
          name: 'gateway',
          dataDir,
          adminPort: 0,
          manifestFile: '',
          upstreams: { echo: 'http://127.0.0.1:9' },
          edgeCertificate: { certPem: certificate.cert, keyPem: certificate.key },
        },
        manifest,
        generation: 1,
        reusePort: false,
        rateLimitTable: SharedRateLimitTable.create({ capacity: 16 }).transferable,
      },
      () => {},
    ),
    (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE',
  );
  const again = createServer();
  assert.equal(await listenOn(again, publicPort), publicPort, 'the public port is free again');
  await close(again);
});
