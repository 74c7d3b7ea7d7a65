import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Timeouts of the issuer's listener. Node's defaults are made for trusted clients (DESIGN.md: 60 s for
 * headers, 300 s per request, no connection cap); a login page faces the internet's slow clients.
 */
export const LISTENER_DEFAULTS = Object.freeze({
  /** Every protocol request and form post is small: 10 s to send the headers is generous. */
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  /** Node's default header limit, written down: cookies and a long authorization request fit. */
  maxHeaderSize: 16 * 1024,
  maxConnections: 2_000,
});

export interface IssuerListener {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `handler` on `host:port` (loopback by default; port 0 picks one) with bounded timeouts. */
export async function listenIssuer(
  handler: RequestListener,
  port: number,
  host = '127.0.0.1',
): Promise<IssuerListener> {
  const server = createServer({ maxHeaderSize: LISTENER_DEFAULTS.maxHeaderSize, requireHostHeader: true }, handler);
  server.headersTimeout = LISTENER_DEFAULTS.headersTimeoutMs;
  server.requestTimeout = LISTENER_DEFAULTS.requestTimeoutMs;
  server.keepAliveTimeout = LISTENER_DEFAULTS.keepAliveTimeoutMs;
  server.maxConnections = LISTENER_DEFAULTS.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
