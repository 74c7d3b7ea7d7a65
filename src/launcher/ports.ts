import { createServer } from 'node:net';

/**
 * A TCP port free on `host` right now: the kernel picks one for a listener that is closed at once.
 * Another program could take it before the child binds it; the child then fails to start and the
 * supervisor reports it, which is the honest outcome for a race no launcher can close.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** `count` distinct free ports (each probe's listener is closed before the next, so avoid repeats). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort(host));
  return [...ports];
}
