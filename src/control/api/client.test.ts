import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { isRampartError } from '../../core/errors.ts';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import { controlRequest } from './client.ts';
import { CONTROL_API_ERRORS } from './errors.ts';
import { issueTestSvid } from './testing.ts';

describe('controlRequest', () => {
  let t: TestCa;
  before(async () => {
    t = await openTestCa();
  });
  after(() => t.cleanup());

  test('an answer that is not JSON is CA_ERR_API_UNAVAILABLE, and no part of the body is in the error', async () => {
    // The body breaks off inside a value (an operator's `reveal` answer carries secret values): the JSON
    // parser's message quotes the text around the bad token, so it must not travel as the cause.
    const control = await issueTestSvid(t, 'control');
    const fragment = 'c3VwZXJzZWNyZXRwYXNzd29yZA';
    const server = createServer({ cert: control.cert, key: control.key }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"value":${fragment}}`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const err = await controlRequest(
        { url: `https://127.0.0.1:${port}`, bundle: t.ca.bundle().pem, trustDomain: t.ca.trustDomain },
        { method: 'POST', path: '/v1/anything', body: {} },
      ).then(
        () => assert.fail('a malformed answer was accepted'),
        (e: unknown) => e,
      );
      assert.ok(isRampartError(err, CONTROL_API_ERRORS.unavailable));
      const seen = inspect(err, { depth: 10 }) + JSON.stringify(err);
      assert.ok(!seen.includes(fragment.slice(0, 8)), 'the body leaked into the error');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
