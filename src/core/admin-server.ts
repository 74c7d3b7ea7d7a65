import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from './logger.ts';

/** A named readiness check: resolves when the component can serve, rejects (or returns false) when not. */
export type ReadinessCheck = () => boolean | Promise<boolean>;

export interface AdminServerOptions {
  /** Port on 127.0.0.1; 0 picks a free one. */
  port: number;
  registry: Registry;
  logger: Logger;
  /** Every check must pass for `/readyz` to answer 200. */
  readiness?: Record<string, ReadinessCheck>;
}

export interface AdminServer {
  readonly port: number;
  /** Marks the component as draining: `/readyz` answers 503 from now on. */
  drain(): void;
  close(): Promise<void>;
}

/**
 * The loopback-only admin listener every component runs: `/healthz` (alive), `/readyz` (able to serve,
 * per the component's checks) and `/metrics` (Prometheus text). It is bound to 127.0.0.1 on purpose:
 * metrics and health are for the operator and the launcher, never for the public edge.
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const checks = Object.entries(options.readiness ?? {});
  let draining = false;

  const server: Server = createServer(async (req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const path = (req.url ?? '/').split('?', 1)[0];
    try {
      if (path === '/healthz') {
        sendJson(res, 200, { status: 'ok' });
      } else if (path === '/readyz') {
        const failing = draining ? ['draining'] : await failingChecks(checks);
        sendJson(res, failing.length === 0 ? 200 : 503, {
          status: failing.length === 0 ? 'ready' : 'not-ready',
          failing,
        });
      } else if (path === '/metrics') {
        const body = await options.registry.metrics();
        res.writeHead(200, { 'content-type': options.registry.contentType }).end(body);
      } else {
        sendJson(res, 404, { error: 'not_found' });
      }
    } catch (err) {
      options.logger.error({ err }, 'admin endpoint failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal' });
    }
  });
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    port,
    drain() {
      draining = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function failingChecks(checks: [string, ReadinessCheck][]): Promise<string[]> {
  const results = await Promise.all(
    checks.map(async ([name, check]) => {
      try {
        return (await check()) ? null : name;
      } catch {
        return name;
      }
    }),
  );
  return results.filter((name): name is string => name !== null);
}

function sendJson(res: import('node:http').ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
