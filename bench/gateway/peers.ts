/**
 * The upstream and the peers the gateway is measured against, all on one core each: an nginx that
 * answers `200` with a small JSON body (the service), nginx as a plain keep-alive reverse proxy, HAProxy
 * as a plain reverse proxy, and HAProxy configured as a secured gateway (ES256 `jwt_verify` with the
 * claim checks Rampart makes, and a stick-table rate limit). TLS 1.3 edges for nginx and the secured
 * HAProxy use the same self-signed P-256 certificate.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts } from '../../src/launcher/ports.ts';
import { BENCH_AUDIENCE, BENCH_ISSUER, BENCH_SCOPE, type TlsFiles } from './credentials.ts';
import { type ProcessGroup, type Started, waitForPort } from './processes.ts';

/** What the upstream answers on every path; the harness checks each line returns exactly this. */
export const UPSTREAM_BODY = '{"ok":true,"service":"bench"}';

/**
 * A rate limit (per second, per key) no benchmark reaches: the limiter runs on every request and never
 * refuses. One million per second is the fastest policy Rampart's GCRA stores accept (1 µs interval).
 */
export const UNREACHABLE_RATE = 1_000_000;

export interface Peers {
  upstream: { port: number; process: Started };
  nginx: { port: number; tlsPort: number; process: Started };
  haproxy: { plainPort: number; securedPort: number; securedTlsPort: number; process: Started };
}

/** Writes the configurations into `dir` and starts the upstream, nginx and HAProxy; resolves once all listen. */
export async function startPeers(
  processes: ProcessGroup,
  dir: string,
  tls: TlsFiles,
  issuerPublicKeyFile: string,
): Promise<Peers> {
  const [upstreamPort, nginxPort, nginxTlsPort, haPlainPort, haSecuredPort, haSecuredTlsPort] = (await freePorts(
    6,
  )) as [number, number, number, number, number, number];

  const upstreamConf = join(dir, 'upstream-nginx.conf');
  writeFileSync(
    upstreamConf,
    nginxMain(dir, 'upstream', [
      `server {`,
      `  listen 127.0.0.1:${upstreamPort} backlog=4096;`,
      `  location / { default_type application/json; return 200 '${UPSTREAM_BODY}'; }`,
      `}`,
    ]),
  );

  const proxyConf = join(dir, 'proxy-nginx.conf');
  const proxyLocation = [
    `  location / {`,
    `    proxy_pass http://service;`,
    `    proxy_http_version 1.1;`,
    `    proxy_set_header Connection "";`,
    `  }`,
  ];
  writeFileSync(
    proxyConf,
    nginxMain(dir, 'proxy', [
      `upstream service { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }`,
      `server {`,
      `  listen 127.0.0.1:${nginxPort} backlog=4096;`,
      ...proxyLocation,
      `}`,
      `server {`,
      `  listen 127.0.0.1:${nginxTlsPort} ssl backlog=4096;`,
      `  ssl_certificate ${tls.cert};`,
      `  ssl_certificate_key ${tls.key};`,
      `  ssl_protocols TLSv1.3;`,
      ...proxyLocation,
      `}`,
    ]),
  );

  const haConf = join(dir, 'haproxy.cfg');
  writeFileSync(
    haConf,
    haproxyConfig({
      plainPort: haPlainPort,
      securedPort: haSecuredPort,
      securedTlsPort: haSecuredTlsPort,
      upstreamPort,
      tlsCombined: tls.combined,
      issuerPublicKeyFile,
    }),
  );

  const upstream = processes.start('upstream nginx', 'nginx', [
    '-p',
    dir,
    '-e',
    join(dir, 'upstream.err'),
    '-c',
    upstreamConf,
  ]);
  const nginx = processes.start('nginx', 'nginx', ['-p', dir, '-e', join(dir, 'proxy.err'), '-c', proxyConf]);
  const haproxy = processes.start('haproxy', 'haproxy', ['-db', '-f', haConf]);
  const alive = (p: Started) => () => p.child.exitCode === null;
  try {
    await waitForPort(upstreamPort, 10_000, alive(upstream));
    await waitForPort(nginxPort, 10_000, alive(nginx));
    await waitForPort(nginxTlsPort, 10_000, alive(nginx));
    await waitForPort(haPlainPort, 10_000, alive(haproxy));
    await waitForPort(haSecuredPort, 10_000, alive(haproxy));
    await waitForPort(haSecuredTlsPort, 10_000, alive(haproxy));
  } catch (err) {
    throw new Error(
      `a peer did not start: ${(err as Error).message}\n${[upstream, nginx, haproxy].map((p) => `[${p.name}] ${p.tail()}`).join('\n')}`,
    );
  }
  return {
    upstream: { port: upstreamPort, process: upstream },
    nginx: { port: nginxPort, tlsPort: nginxTlsPort, process: nginx },
    haproxy: {
      plainPort: haPlainPort,
      securedPort: haSecuredPort,
      securedTlsPort: haSecuredTlsPort,
      process: haproxy,
    },
  };
}

/** One nginx master with one worker, in the foreground, no access log, long-lived keep-alive. */
function nginxMain(dir: string, name: string, servers: readonly string[]): string {
  return [
    'worker_processes 1;',
    'daemon off;',
    `pid ${join(dir, `${name}-nginx.pid`)};`,
    `error_log ${join(dir, `${name}.err`)} warn;`,
    'events { worker_connections 8192; }',
    'http {',
    '  access_log off;',
    '  keepalive_requests 1000000;',
    '  keepalive_timeout 60s;',
    `  client_body_temp_path ${join(dir, `${name}-body`)};`,
    `  proxy_temp_path ${join(dir, `${name}-proxy`)};`,
    ...servers.map((line) => `  ${line}`),
    '}',
    '',
  ].join('\n');
}

interface HaproxyPorts {
  plainPort: number;
  securedPort: number;
  securedTlsPort: number;
  upstreamPort: number;
  tlsCombined: string;
  issuerPublicKeyFile: string;
}

/**
 * HAProxy with one thread. The secured frontend does what a secured gateway does, cheapest checks first
 * and the signature last (as a careful operator would order them): a per-address stick-table rate
 * limit, then a bearer token whose header says ES256 and `at+jwt`, whose `iss`, `aud`, `exp` and `scope`
 * match what Rampart checks, and whose ES256 signature verifies against the issuer's public key.
 */
function haproxyConfig(p: HaproxyPorts): string {
  const deny = (condition: string) => `  http-request deny deny_status 401 ${condition}`;
  return [
    'global',
    '  nbthread 1',
    '  maxconn 8000',
    '  log stderr format short local0 warning',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  timeout http-keep-alive 30s',
    'backend service',
    '  http-reuse always',
    `  server service 127.0.0.1:${p.upstreamPort}`,
    'frontend plain',
    `  bind 127.0.0.1:${p.plainPort}`,
    '  default_backend service',
    'frontend secured',
    `  bind 127.0.0.1:${p.securedPort}`,
    `  bind 127.0.0.1:${p.securedTlsPort} ssl crt ${p.tlsCombined} ssl-min-ver TLSv1.3`,
    '  stick-table type ip size 1m expire 60s store http_req_rate(1s)',
    '  http-request track-sc0 src',
    `  http-request deny deny_status 429 if { sc_http_req_rate(0) gt ${UNREACHABLE_RATE} }`,
    '  http-request set-var(txn.jwt) http_auth_bearer',
    `  http-request set-var(txn.alg) var(txn.jwt),jwt_header_query('$.alg')`,
    '  http-request set-var(txn.now) date()',
    deny('unless { var(txn.alg) -m str ES256 }'),
    deny(`unless { var(txn.jwt),jwt_header_query('$.typ') -m str at+jwt }`),
    deny(`unless { var(txn.jwt),jwt_payload_query('$.iss') -m str ${BENCH_ISSUER} }`),
    deny(`unless { var(txn.jwt),jwt_payload_query('$.aud') -m str ${BENCH_AUDIENCE} }`),
    deny(`unless { var(txn.jwt),jwt_payload_query('$.exp','int'),sub(txn.now) -m int gt 0 }`),
    deny(`unless { var(txn.jwt),jwt_payload_query('$.scope') -m reg (^|\\ )${BENCH_SCOPE}(\\ |$) }`),
    deny(`unless { var(txn.jwt),jwt_verify(txn.alg,"${p.issuerPublicKeyFile}") -m int 1 }`),
    '  default_backend service',
    '',
  ].join('\n');
}
