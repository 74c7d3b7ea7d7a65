import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { requireService } from './require-service.ts';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('returns the URL when the server answers', async (t) => {
  const server = createServer((s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const { port } = server.address() as { port: number };
  const url = `redis://127.0.0.1:${port}`;
  assert.equal(await requireService(t, 'redis', { RAMPART_TEST_REDIS_URL: url }), url);
});

test('fails under CI=true when the server is missing', async (t) => {
  const url = `postgres://postgres@127.0.0.1:${await closedPort()}/x`;
  await assert.rejects(requireService(t, 'postgres', { CI: 'true', RAMPART_TEST_POSTGRES_URL: url }), /CI=true/);
});

test('skips outside CI when the server is missing', async (t) => {
  const url = `redis://127.0.0.1:${await closedPort()}`;
  let skipped = '';
  const fake = { skip: (reason: string) => (skipped = reason) } as unknown as typeof t;
  assert.equal(await requireService(fake, 'redis', { RAMPART_TEST_REDIS_URL: url }), null);
  assert.match(skipped, /not reachable/);
});
