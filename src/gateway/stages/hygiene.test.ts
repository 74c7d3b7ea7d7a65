import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { DEFAULTS } from '../../config/defaults.ts';
import { isRampartError, type RampartError } from '../../core/errors.ts';
import type { RequestContext } from '../context.ts';
import { createHygiene, limitBody } from './hygiene.ts';

const LIMITS = { ...DEFAULTS.gatewayLimits, maxHeadersCount: 10, maxTargetLength: 64, maxBodyBytes: 100 };
const hygiene = createHygiene({ manifest: { gateway: { limits: LIMITS } } });

/** A request as the stage sees it: Node has parsed it; `rawHeaders` is what came on the wire. */
function request(raw: [string, string][], url = '/a', httpVersion = '1.1'): RequestContext {
  const headers: Record<string, string> = {};
  for (const [name, value] of raw) headers[name.toLowerCase()] ??= value;
  const req = { url, httpVersion, rawHeaders: raw.flat(), headers } as unknown as IncomingMessage;
  return { req, path: '', query: '' } as unknown as RequestContext;
}

function refusal(ctx: RequestContext): { status: number; reason: string } | null {
  try {
    hygiene.request(ctx);
    return null;
  } catch (err) {
    const e = err as RampartError;
    return { status: e.status, reason: String(e.detail?.['reason']) };
  }
}

describe('hygiene', () => {
  const HOST: [string, string] = ['Host', 'gw.test'];

  test('refuses what an upstream could read differently (table)', () => {
    const cases: [string, RequestContext, number, string][] = [
      ['HTTP/2.0 request line', request([HOST], '/a', '2.0'), 400, 'http_version'],
      ['HTTP/0.9 request line', request([], '/a', '0.9'), 400, 'http_version'],
      ['target too long', request([HOST], `/${'a'.repeat(64)}`), 414, 'target_too_long'],
      ['absolute-form', request([HOST], 'http://evil.test/a'), 400, 'target_form'],
      ['asterisk-form', request([HOST], '*'), 400, 'target_form'],
      [
        'too many header lines',
        request([HOST, ...Array.from({ length: 10 }, (_, i): [string, string] => [`x-${i}`, '1'])]),
        431,
        'header_count',
      ],
      ['duplicate Host', request([HOST, ['host', 'evil.test']]), 400, 'duplicate_host'],
      [
        'duplicate Authorization',
        request([HOST, ['Authorization', 'a'], ['authorization', 'b']]),
        400,
        'duplicate_authorization',
      ],
      [
        'duplicate Content-Length',
        request([HOST, ['Content-Length', '1'], ['Content-Length', '1']]),
        400,
        'duplicate_content_length',
      ],
      [
        'duplicate Transfer-Encoding',
        request([HOST, ['Transfer-Encoding', 'chunked'], ['Transfer-Encoding', 'chunked']]),
        400,
        'duplicate_transfer_encoding',
      ],
      ['CL with TE', request([HOST, ['Content-Length', '1'], ['Transfer-Encoding', 'chunked']]), 400, 'cl_and_te'],
      ['TE on HTTP/1.0', request([HOST, ['Transfer-Encoding', 'chunked']], '/a', '1.0'), 400, 'te_http10'],
      ['TE identity, chunked', request([HOST, ['Transfer-Encoding', 'identity, chunked']]), 400, 'te_coding'],
      ['CL not digits', request([HOST, ['Content-Length', '1e3']]), 400, 'cl_invalid'],
      ['CL over the limit', request([HOST, ['Content-Length', '101']]), 413, 'body_too_large'],
      ['no Host on HTTP/1.1', request([]), 400, 'host_missing'],
      ['empty Host', request([['Host', '']]), 400, 'host_invalid'],
      ['Host with userinfo', request([['Host', 'a@b']]), 400, 'host_invalid'],
      ['Host with a path', request([['Host', 'a/b']]), 400, 'host_invalid'],
      ['Host with a space', request([['Host', 'a b']]), 400, 'host_invalid'],
      ['Host with a bad port', request([['Host', 'a:b']]), 400, 'host_invalid'],
      ['Host percent-encoded', request([['Host', 'a%2eb']]), 400, 'host_invalid'],
      ['Transfer_Encoding', request([HOST, ['Transfer_Encoding', 'chunked']]), 400, 'header_name_confusable'],
      ['X_Forwarded_For', request([HOST, ['X_Forwarded_For', '1.2.3.4']]), 400, 'header_name_confusable'],
      ['x_rampart_caller', request([HOST, ['x_rampart_caller', 'admin']]), 400, 'header_name_confusable'],
      ['non-canonical path', request([HOST], '/a/../../b'), 400, 'path_err_traversal'],
    ];
    for (const [name, ctx, status, reason] of cases) {
      assert.deepEqual(refusal(ctx), { status, reason }, name);
    }
  });

  test('accepts ordinary requests and sets the canonical path and query', () => {
    const cases: [string, RequestContext, string, string][] = [
      ['plain', request([HOST], '/a/./b/?x=1'), '/a/b', 'x=1'],
      ['HTTP/1.0 without Host', request([], '/a', '1.0'), '/a', ''],
      ['Host with port', request([['Host', 'gw.test:8443']]), '/a', ''],
      ['IPv6 Host', request([['Host', '[::1]:8443']]), '/a', ''],
      ['internal name with _', request([['Host', 'my_service.internal']]), '/a', ''],
      ['TE chunked in upper case', request([HOST, ['Transfer-Encoding', 'CHUNKED']]), '/a', ''],
      ['custom header with _', request([HOST, ['X_Api_Key', 'k']]), '/a', ''],
      ['CL at the limit', request([HOST, ['Content-Length', '100']]), '/a', ''],
      [
        'header lines at the limit',
        request([HOST, ...Array.from({ length: 9 }, (_, i): [string, string] => [`x-${i}`, '1'])]),
        '/a',
        '',
      ],
    ];
    for (const [name, ctx, path, query] of cases) {
      assert.equal(refusal(ctx), null, name);
      assert.equal(ctx.path, path, name);
      assert.equal(ctx.query, query, name);
    }
  });

  test('drops inbound x-rampart-* and Expect before any later stage reads them', () => {
    const ctx = request([HOST, ['X-Rampart-Caller', 'spoofed'], ['Expect', '100-continue'], ['X-Other', 'kept']]);
    assert.equal(refusal(ctx), null);
    assert.equal(ctx.req.headers['x-rampart-caller'], undefined);
    assert.equal(ctx.req.headers.expect, undefined);
    assert.equal(ctx.req.headers['x-other'], 'kept');
  });
});

describe('limitBody', () => {
  /** A stand-in for IncomingMessage: a stream with `complete`. */
  function body() {
    const req = new PassThrough() as PassThrough & { complete: boolean };
    req.complete = false;
    return req;
  }
  const read = async (stream: NodeJS.ReadableStream) => {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString();
  };

  test('passes a body up to the limit through unchanged', async () => {
    const req = body();
    const limited = limitBody(req as unknown as IncomingMessage, 10);
    req.write('hello');
    req.end('world');
    req.complete = true;
    assert.equal(await read(limited), 'helloworld');
  });

  test('fails with a 413 denial once the limit is passed, without destroying the request', async () => {
    const req = body();
    const limited = limitBody(req as unknown as IncomingMessage, 10);
    req.write('hello');
    req.write('world!');
    await assert.rejects(
      read(limited),
      (err: unknown) => isRampartError(err, 'GW_ERR_BODY_TOO_LARGE') && (err as RampartError).status === 413,
    );
    assert.equal(req.destroyed, false, 'the client socket must stay open to receive the 413');
  });

  test('a client that hangs up mid-body fails the stream instead of leaving it waiting', async () => {
    const req = body();
    const limited = limitBody(req as unknown as IncomingMessage, 100);
    req.write('partial');
    const reading = read(limited);
    req.destroy();
    await assert.rejects(reading, (err: unknown) => isRampartError(err, 'GW_ERR_CLIENT_ABORTED'));
  });

  test('a late error with nobody listening is not an uncaught exception', async () => {
    const req = body();
    const limited = limitBody(req as unknown as IncomingMessage, 1);
    req.write('too much');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(limited.destroyed, true);
  });
});
