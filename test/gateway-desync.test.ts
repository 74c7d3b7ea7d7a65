/**
 * Request smuggling and desync, over raw sockets against a real gateway in-process. Each row is bytes
 * no HTTP client would send, and what must follow: the statuses the client reads, whether the gateway
 * closed the connection, and exactly which requests (path and body) reached the upstream. The upstream
 * records every request it starts to receive and every one it receives completely: a request the
 * gateway refused must not even start upstream, and a "smuggled" request hidden in a body must never
 * appear there at all.
 *
 * Rows marked accepted are unambiguous under RFC 9112 (optional whitespace, case-insensitive coding
 * names, a leading empty line...): the point there is that the upstream sees the same requests the
 * gateway parsed, because the gateway re-frames every request it forwards.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { RUN_FILE, type RunningGateway, startGateway, testManifest } from './helpers/gateway-harness.ts';
import { rawExchange, statuses } from './helpers/http.ts';
import { startTestIssuer, type TestIssuer } from './helpers/issuer.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An upstream that records requests as they start and as they complete. */
async function startRecorder() {
  const started: Seen[] = [];
  const completed: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const seen: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: '' };
    started.push(seen);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.body = Buffer.concat(chunks).toString('latin1');
      completed.push(seen);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
    req.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    started,
    completed,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

interface Row {
  name: string;
  bytes: string;
  /** Status codes the client reads, in order. */
  statuses: number[];
  /** Paths the upstream receives completely, in order. */
  upstream: string[];
  /** Their bodies, when it matters. */
  bodies?: string[];
  /**
   * The body was being streamed when the parser refused the rest: the upstream may have seen the
   * request start, but must never see it complete.
   */
  abortedBody?: boolean;
}

const HOST = 'Host: gw.test\r\n';
/** A request the client means to be the last: the gateway closes after it, so the exchange ends. */
const last = (path: string) => `GET ${path} HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`;
/** What a smuggling attempt hides: it must never reach the upstream. */
const SMUGGLED = `GET /public/smuggled HTTP/1.1\r\n${HOST}\r\n`;
const post = (headers: string, body: string) => `POST /public/a HTTP/1.1\r\n${HOST}${headers}\r\n${body}`;
const chunked = (te: string, body = '5\r\nhello\r\n0\r\n\r\n') => post(`Transfer-Encoding:${te}\r\n`, body);
const cl = (value: string, body = 'hello') => post(`Content-Length:${value}\r\n`, body);

/** Refused rows: 400 (unless noted), the connection closed, nothing upstream. */
const refused = (name: string, bytes: string, status = 400): Row => ({
  name,
  bytes,
  statuses: [status],
  upstream: [],
});
const refusedInBody = (name: string, bytes: string, status = 400): Row => ({
  ...refused(name, bytes, status),
  abortedBody: true,
});
/** Accepted rows: the request and a final one both reach the upstream, bodies intact. */
const accepted = (name: string, bytes: string, body = 'hello'): Row => ({
  name,
  bytes: bytes + last('/public/after'),
  statuses: [200, 200],
  upstream: ['/public/a', '/public/after'],
  bodies: [body, ''],
});

const ROWS: Row[] = [
  // CL.TE and TE.CL: both framings in one message (RFC 9112 §6.3: ought to be handled as an error).
  refused('CL.TE', `${post('Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n')}${SMUGGLED}`),
  refused('TE.CL', post('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', `5c\r\n${SMUGGLED}\r\n0\r\n\r\n`)),
  refused('CL.TE with an obfuscated TE', post('Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n', '0\r\n\r\n')),
  refused('CL.TE with TE: identity', post('Content-Length: 5\r\nTransfer-Encoding: identity\r\n', 'hello')),
  // TE.TE: one side reads the coding, the other does not.
  refused('TE: xchunked', chunked(' xchunked', `0\r\n\r\n${SMUGGLED}`)),
  refused('TE: chunked, identity', chunked(' chunked, identity')),
  refused('TE: identity, chunked', chunked(' identity, chunked')),
  refused('TE: gzip, chunked', chunked(' gzip, chunked')),
  refused('TE: "chunked" (quoted)', chunked(' "chunked"')),
  refused('TE: chunked;q=1', chunked(' chunked;q=1')),
  refused(
    'TE duplicated, identical',
    post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'),
  ),
  refused(
    'TE duplicated, second identity',
    post('Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n', '0\r\n\r\n'),
  ),
  refused('TE duplicated, second empty', post('Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n', '0\r\n\r\n')),
  refused('TE value after a vertical tab', chunked('\x0bchunked')),
  refused('TE value after a form feed', chunked('\x0cchunked')),
  refused('TE name followed by a space', post('Transfer-Encoding : chunked\r\n', '0\r\n\r\n')),
  refused('TE name followed by a tab', post('Transfer-Encoding\t: chunked\r\n', '0\r\n\r\n')),
  refused('TE line folded onto the previous one', post('X-A: 1\r\n Transfer-Encoding: chunked\r\n', '0\r\n\r\n')),
  refused('TE spelled with an underscore', post('Transfer_Encoding: chunked\r\n', '0\r\n\r\n')),
  refused('Content-Length spelled with an underscore', post('Content_Length: 5\r\n', 'hello')),
  refused(
    'X-Forwarded-For spelled with underscores',
    `GET /public/a HTTP/1.1\r\n${HOST}X_Forwarded_For: 1.2.3.4\r\n\r\n`,
  ),
  accepted('TE: CHUNKED (coding names are case-insensitive)', chunked(' CHUNKED')),
  accepted('TE with extra leading spaces (OWS)', chunked('   chunked')),
  accepted('TE after a tab (OWS)', chunked('\tchunked')),
  accepted('TE with a trailing space (OWS)', chunked(' chunked ')),
  // Legal OWS, but llhttp refuses a trailing tab; refusing the unusual is the safe direction.
  refused('TE with a trailing tab', chunked(' chunked\t')),
  // CL.CL and malformed Content-Length.
  refused('CL duplicated, conflicting', post('Content-Length: 1\r\nContent-Length: 5\r\n', 'hello')),
  refused('CL duplicated, identical', post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello')),
  refused('CL as a list', cl(' 5, 5')),
  refused('CL with a plus sign', cl(' +5')),
  refused('CL in hex', cl(' 0x5')),
  refused('CL negative', cl(' -5')),
  refused('CL with an inner space', cl(' 5 5')),
  refused('CL with a decimal point', cl(' 5.0')),
  refused('CL beyond 64 bits', cl(' 99999999999999999999999')),
  refused('CL empty', cl('')),
  accepted('CL after extra spaces (OWS)', cl('   5')),
  accepted('CL with trailing whitespace (OWS)', cl(' 5\t ')),
  accepted('CL with a leading zero', cl(' 05')),
  {
    name: 'CL counts exactly: what follows the body is the next request',
    bytes: `${cl(' 5', 'hello')}${last('/public/next')}`,
    statuses: [200, 200],
    upstream: ['/public/a', '/public/next'],
    bodies: ['hello', ''],
  },
  {
    name: 'CL: 0 on a GET followed by a request-shaped body',
    bytes: `GET /public/a HTTP/1.1\r\n${HOST}Content-Length: 0\r\n\r\n${last('/public/next')}`,
    statuses: [200, 200],
    upstream: ['/public/a', '/public/next'],
  },
  accepted(
    'Connection naming Content-Length (hop-by-hop abuse)',
    post('Connection: content-length\r\nContent-Length: 5\r\n', 'hello'),
  ),
  // Host.
  refused('Host duplicated', `GET /public/a HTTP/1.1\r\nHost: gw.test\r\nHost: evil.test\r\n\r\n`),
  refused('Host duplicated, different case', `GET /public/a HTTP/1.1\r\nHost: gw.test\r\nhOST: evil.test\r\n\r\n`),
  refused('Host empty', 'GET /public/a HTTP/1.1\r\nHost:\r\n\r\n'),
  refused('Host missing on HTTP/1.1', 'GET /public/a HTTP/1.1\r\nX-A: 1\r\n\r\n'),
  refused('Host with a path', 'GET /public/a HTTP/1.1\r\nHost: gw.test/admin\r\n\r\n'),
  refused('Host with userinfo', 'GET /public/a HTTP/1.1\r\nHost: user@gw.test\r\n\r\n'),
  refused('Host with a space', 'GET /public/a HTTP/1.1\r\nHost: gw.test evil.test\r\n\r\n'),
  refused('Host with a comma', 'GET /public/a HTTP/1.1\r\nHost: gw.test,evil.test\r\n\r\n'),
  // Request targets.
  refused('absolute-form target', `GET http://evil.test/public/a HTTP/1.1\r\n${HOST}\r\n`),
  refused('absolute-form target, https', `GET https://gw.test/public/a HTTP/1.1\r\n${HOST}\r\n`),
  refused('asterisk-form target', `OPTIONS * HTTP/1.1\r\n${HOST}\r\n`),
  refused('authority-form target on GET', `GET gw.test:443 HTTP/1.1\r\n${HOST}\r\n`),
  refused('CONNECT', `CONNECT gw.test:443 HTTP/1.1\r\n${HOST}\r\n`, 405),
  refused('target with a space', `GET /public/a b HTTP/1.1\r\n${HOST}\r\n`),
  refused('target with a raw non-ASCII byte', `GET /public/\xe9 HTTP/1.1\r\n${HOST}\r\n`),
  refused('target longer than the limit', `GET /public/${'a'.repeat(9_000)} HTTP/1.1\r\n${HOST}\r\n`, 414),
  // Line and field syntax.
  refused('obs-fold', `GET /public/a HTTP/1.1\r\n${HOST}X-A: 1\r\n  folded\r\n\r\n`),
  refused('bare LF line endings', 'GET /public/a HTTP/1.1\nHost: gw.test\n\n'),
  refused('bare LF after one field', `GET /public/a HTTP/1.1\r\nHost: gw.test\nX-A: 1\r\n\r\n`),
  refused('bare CR in the request line', `GET /public/a HTTP/1.1\r${HOST}\r\n`),
  refused('bare CR in a field value', `GET /public/a HTTP/1.1\r\n${HOST}X-A: 1\r2\r\n\r\n`),
  refused('NUL in a field value', `GET /public/a HTTP/1.1\r\n${HOST}X-A: 1\x002\r\n\r\n`),
  refused('NUL in a field name', `GET /public/a HTTP/1.1\r\n${HOST}X\x00A: 1\r\n\r\n`),
  refused('DEL in a field value', `GET /public/a HTTP/1.1\r\n${HOST}X-A: 1\x7f2\r\n\r\n`),
  refused('field line without a colon', `GET /public/a HTTP/1.1\r\n${HOST}X-A\r\n\r\n`),
  refused('field with an empty name', `GET /public/a HTTP/1.1\r\n${HOST}: 1\r\n\r\n`),
  refused(
    'more header fields than the limit',
    `GET /public/a HTTP/1.1\r\n${HOST}${Array.from({ length: 100 }, (_, i) => `X-${i}: ${i}\r\n`).join('')}\r\n`,
    431,
  ),
  refused(
    'header section larger than the limit',
    `GET /public/a HTTP/1.1\r\n${HOST}X-A: ${'a'.repeat(17_000)}\r\n\r\n`,
    431,
  ),
  // Chunked bodies: malformed chunks are refused mid-body.
  refusedInBody('chunk extension over 16 KiB', chunked(' chunked', `1;${'a'.repeat(20_000)}\r\nx\r\n0\r\n\r\n`), 413),
  refusedInBody('chunk extension `;` without a name', chunked(' chunked', '1;\r\nx\r\n0\r\n\r\n')),
  refusedInBody('chunk extension with a bare LF', chunked(' chunked', '1;a=b\nx\r\n0\r\n\r\n')),
  refusedInBody('chunk size not hex', chunked(' chunked', `z\r\nx\r\n0\r\n\r\n${SMUGGLED}`)),
  refusedInBody('chunk size overflowing 64 bits', chunked(' chunked', 'ffffffffffffffffff1\r\nx\r\n0\r\n\r\n')),
  refusedInBody('chunk size negative', chunked(' chunked', '-1\r\nx\r\n0\r\n\r\n')),
  refusedInBody('chunk size with 0x', chunked(' chunked', '0x1\r\nx\r\n0\r\n\r\n')),
  refusedInBody('chunk size followed by a space', chunked(' chunked', '1 \r\nx\r\n0\r\n\r\n')),
  refusedInBody('chunk data longer than its size', chunked(' chunked', `1\r\nxx\r\n0\r\n\r\n${SMUGGLED}`)),
  refusedInBody('chunk data without its CRLF', chunked(' chunked', '1\r\nx0\r\n\r\n')),
  accepted('chunk extension with a value', chunked(' chunked', '5;name=value\r\nhello\r\n0\r\n\r\n')),
  accepted('chunk extension with a quoted value', chunked(' chunked', '5;name="v;a"\r\nhello\r\n0\r\n\r\n')),
  accepted('trailer fields after the last chunk', chunked(' chunked', '5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n')),
  refusedInBody('a Content-Length trailer', chunked(' chunked', '5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n')),
  // Pipelining around a smuggling attempt.
  {
    name: 'two valid pipelined requests',
    bytes: `GET /public/1 HTTP/1.1\r\n${HOST}\r\n${last('/public/2')}`,
    statuses: [200, 200],
    upstream: ['/public/1', '/public/2'],
  },
  {
    name: 'a valid request, then a smuggling attempt',
    bytes: `GET /public/1 HTTP/1.1\r\n${HOST}\r\n${post('Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n')}${SMUGGLED}`,
    statuses: [200, 400],
    upstream: ['/public/1'],
  },
  {
    name: 'a valid request, then a duplicate Host, then a valid one',
    bytes: `GET /public/1 HTTP/1.1\r\n${HOST}\r\nGET /public/2 HTTP/1.1\r\n${HOST}${HOST}\r\n${last('/public/3')}`,
    statuses: [200, 400],
    upstream: ['/public/1'],
  },
  refused('a refused coding, then a pipelined request', `${chunked(' identity, chunked', '0\r\n\r\n')}${SMUGGLED}`),
  // Versions and request lines.
  refused(
    'HTTP/1.0 with Transfer-Encoding',
    `POST /public/a HTTP/1.0\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  ),
  {
    name: 'HTTP/1.0 with Content-Length',
    bytes: `POST /public/a HTTP/1.0\r\n${HOST}Content-Length: 5\r\n\r\nhello`,
    statuses: [200],
    upstream: ['/public/a'],
    bodies: ['hello'],
  },
  refused('HTTP/1.2', `GET /public/a HTTP/1.2\r\n${HOST}\r\n`),
  refused('HTTP/2.0 request line', `GET /public/a HTTP/2.0\r\n${HOST}\r\n`),
  refused('HTTP/2 connection preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  refused('HTTP/0.9 request line', 'GET /public/a\r\n\r\n'),
  refused('lower-case version', `GET /public/a http/1.1\r\n${HOST}\r\n`),
  refused('lower-case method', `get /public/a HTTP/1.1\r\n${HOST}\r\n`),
  refused('unknown method', `FOO /public/a HTTP/1.1\r\n${HOST}\r\n`),
  refused('tab between method and target', `GET\t/public/a HTTP/1.1\r\n${HOST}\r\n`),
  {
    name: 'double space between method and target (RFC 9112 §3: may parse on whitespace)',
    bytes: `GET  /public/a HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`,
    statuses: [200],
    upstream: ['/public/a'],
  },
  {
    name: 'an empty line before the request line (RFC 9112 §2.2)',
    bytes: `\r\n${last('/public/a')}`,
    statuses: [200],
    upstream: ['/public/a'],
  },
  // Expect.
  {
    name: 'Expect: 100-continue on a public route',
    bytes: `POST /public/a HTTP/1.1\r\n${HOST}Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nhello`,
    statuses: [100, 200],
    upstream: ['/public/a'],
    bodies: ['hello'],
  },
  refused(
    'Expect: 100-continue on a protected route without a token: no 100, 401',
    `POST /orders/1 HTTP/1.1\r\n${HOST}Content-Length: 5\r\nExpect: 100-continue\r\n\r\nhello`,
    401,
  ),
  refused(
    'Expect with an unknown expectation',
    `POST /public/a HTTP/1.1\r\n${HOST}Content-Length: 5\r\nExpect: teapot\r\n\r\nhello`,
    417,
  ),
];

describe('gateway desync table', () => {
  let issuer: TestIssuer;
  let upstream: Awaited<ReturnType<typeof startRecorder>>;
  let gw: RunningGateway;

  before(async () => {
    issuer = await startTestIssuer('https://api.test');
    upstream = await startRecorder();
    const manifest = testManifest(`
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: 18080 }
  tls: off
identity:
  external: { issuer: "${issuer.issuer}", jwksUri: "${issuer.jwksUri}" }
  audience: https://api.test
services:
  echo:
    run: ${RUN_FILE}
    routes:
      - { id: public, path: /public/**, methods: [GET, POST], auth: none }
      - { id: orders, path: /orders/**, methods: [GET, POST], auth: { scopes: [orders] } }
`);
    gw = await startGateway(manifest, { echo: upstream.url });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
    await issuer.close();
  });

  test('the table is big enough to mean something', () => {
    assert.ok(ROWS.length >= 90, `${ROWS.length} rows`);
    assert.equal(new Set(ROWS.map((r) => r.name)).size, ROWS.length, 'row names are unique');
  });

  for (const row of ROWS) {
    test(row.name, async () => {
      const started = upstream.started.length;
      const completed = upstream.completed.length;
      const res = await rawExchange(gw.port, row.bytes, 1_500);
      // Give a request the gateway forwarded (or wrongly started) time to arrive upstream.
      await new Promise((resolve) => setTimeout(resolve, 30));
      assert.deepEqual(
        statuses(res.text),
        row.statuses,
        `statuses; response: ${JSON.stringify(res.text.slice(0, 300))}`,
      );
      assert.ok(res.closed, 'the gateway closed the connection');
      const done = upstream.completed.slice(completed);
      assert.deepEqual(
        done.map((s) => s.url),
        row.upstream,
        'requests the upstream received',
      );
      if (row.bodies)
        assert.deepEqual(
          done.map((s) => s.body),
          row.bodies,
          'bodies the upstream received',
        );
      const begun = upstream.started.slice(started).map((s) => s.url);
      if (!row.abortedBody) assert.deepEqual(begun, row.upstream, 'no refused request even started upstream');
      assert.ok(!begun.some((url) => url.includes('smuggled')), 'a smuggled request never reaches the upstream');
      for (const seen of done) {
        // What the upstream reads is the gateway's framing, never the client's.
        assert.equal(
          seen.headers['transfer-encoding'] === undefined || seen.headers['content-length'] === undefined,
          true,
        );
        assert.equal(seen.headers.expect, undefined, 'Expect is answered by the gateway, not forwarded');
        assert.equal(seen.headers['x-trailer'], undefined, 'trailers are not promoted to header fields');
      }
    });
  }

  test('a burst of 100 pipelined requests is served in order, one at a time', async () => {
    const completed = upstream.completed.length;
    const burst = Array.from({ length: 100 }, (_, i) => `GET /public/p${i} HTTP/1.1\r\n${HOST}\r\n`).join('');
    const res = await rawExchange(gw.port, `${burst}${last('/public/end')}`, 3_000);
    assert.deepEqual(statuses(res.text), new Array(101).fill(200));
    assert.deepEqual(
      upstream.completed.slice(completed).map((s) => s.url),
      [...Array.from({ length: 100 }, (_, i) => `/public/p${i}`), '/public/end'],
    );
  });

  test('refusals are counted and recorded as decision events', async () => {
    assert.ok((await gw.denials('listener', 'hpe_invalid_transfer_encoding')) > 0);
    assert.ok((await gw.denials('hygiene', 'te_coding')) > 0);
    assert.ok((await gw.denials('listener', 'connect_method')) > 0);
    assert.ok(gw.decisions.some((e) => e.stage === 'listener' && e.code === 'GW_ERR_PARSER' && e.status === 400));
    assert.ok(gw.decisions.some((e) => e.stage === 'hygiene' && e.reason === 'duplicate_host'));
    assert.ok(gw.decisions.some((e) => e.stage === 'hygiene' && e.reason === 'host_missing'));
  });
});
