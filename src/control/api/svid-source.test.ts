import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../core/logger.ts';
import { createMetrics } from '../../core/metrics.ts';
import { createSvidSource } from './svid-source.ts';
import { startTestControlPlane, type TestControlPlane } from './testing.ts';

/**
 * A loopback TCP relay to the API that can hold the next connection back until released: lets a test
 * finish one request while another is still waiting for its answer.
 */
function startRelay(port: number) {
  const held: (() => void)[] = [];
  const sockets = new Set<Socket>();
  let holdNext = false;
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('error', () => {});
    const wire = () => {
      const upstream = connect(port, '127.0.0.1');
      sockets.add(upstream);
      upstream.on('error', () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    };
    if (holdNext) {
      holdNext = false;
      client.pause();
      held.push(wire);
    } else wire();
  });
  return {
    server,
    held,
    holdNext: () => {
      holdNext = true;
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

describe('SVID source', () => {
  let plane: TestControlPlane;
  before(async () => {
    plane = await startTestControlPlane();
  });
  after(() => plane.close());

  it('keeps an SVID renewed while a bundle refresh was in flight', async () => {
    const relay = startRelay(Number(new URL(plane.target.url).port));
    await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
    const port = (relay.server.address() as { port: number }).port;
    const source = createSvidSource({
      control: { ...plane.target, url: `https://127.0.0.1:${port}` },
      joinToken: plane.testCa.ca.mintJoinToken('catalog').token,
      expectedId: 'spiffe://shop.local/svc/catalog',
      logger: createLogger({ name: 'catalog', level: 'silent' }),
      registry: createMetrics('catalog'),
    });
    try {
      const first = await source.start();
      await plane.testCa.ca.rotateNow();
      relay.holdNext();
      const refreshing = source.refreshBundle();
      while (relay.held.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const renewed = await source.renewNow();
      assert.notEqual(renewed.certificatePem, first.certificatePem);
      relay.held[0]?.();
      await refreshing;
      assert.equal(source.current().certificatePem, renewed.certificatePem, 'the renewed SVID stays in place');
      assert.equal(source.current().keyPem, renewed.keyPem);
    } finally {
      source.close();
      relay.close();
    }
  });
});
