/**
 * The floor of the platform: the least a Node reverse proxy does per request (node:http in, one undici
 * keep-alive pool out, the body piped back), with no checks, no logs, no metrics. The benchmark runs it
 * as its own process beside the gateway, so the table separates what Node itself costs per request from
 * what Rampart's chain adds on top of it. Not a product: it forwards whatever it receives.
 *
 *   node bench/gateway/node-floor-proxy.ts <listen port> <upstream port>
 */
import { createServer } from 'node:http';
import { Pool } from 'undici';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number) as [number, number];
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 128, keepAliveTimeout: 4_000 });

createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
  pool.request({ method: req.method as 'GET', path: req.url ?? '/', headers: { host: 'upstream' } }).then(
    (upstream) => {
      res.writeHead(upstream.statusCode, upstream.headers as Record<string, string>);
      upstream.body.on('error', () => res.destroy());
      upstream.body.pipe(res);
    },
    () => {
      res.writeHead(502).end();
    },
  );
}).listen(listenPort, '127.0.0.1');
