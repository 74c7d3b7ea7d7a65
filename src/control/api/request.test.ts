import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it, mock } from 'node:test';
import { RampartError } from '../../core/errors.ts';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import { CONTROL_API_ERRORS } from './errors.ts';
import { apiCaller, clientCertificate } from './request.ts';
import { issueTestSvid } from './testing.ts';

/** A request on a socket TLS authorized with `peer` (one socket: a keep-alive connection). */
function requestOn(peer: X509Certificate): IncomingMessage {
  const socket = { authorized: true, authorizationError: null, getPeerX509Certificate: () => peer };
  return { socket } as unknown as IncomingMessage;
}

const refusedAs = (code: string) => (err: unknown) => err instanceof RampartError && err.code === code;

describe('control API caller', () => {
  let testCa: TestCa;
  let peer: X509Certificate;
  before(async () => {
    testCa = await openTestCa();
    peer = new X509Certificate((await issueTestSvid(testCa, 'orders')).cert);
  });
  after(() => {
    mock.timers.reset();
    testCa.cleanup();
  });

  it('is the SVID identity while the certificate is valid', () => {
    const caller = apiCaller(requestOn(peer), testCa.ca.trustDomain);
    assert.equal(caller.service, 'orders');
  });

  // TLS checks validity at the handshake only: a connection held open past notAfter (or a checked
  // caller cached for it) must not keep the identity.
  const outside: Array<[string, () => number]> = [
    ['after notAfter', () => peer.validToDate.getTime() + 1000],
    ['before notBefore', () => peer.validFromDate.getTime() - 1000],
  ];
  for (const [name, at] of outside) {
    it(`refuses a certificate ${name} on a connection already checked`, () => {
      const req = requestOn(peer);
      assert.equal(apiCaller(req, testCa.ca.trustDomain).service, 'orders');
      mock.timers.enable({ apis: ['Date'], now: at() });
      try {
        assert.throws(() => apiCaller(req, testCa.ca.trustDomain), refusedAs(CONTROL_API_ERRORS.noClientCertificate));
        assert.throws(() => clientCertificate(req), refusedAs(CONTROL_API_ERRORS.noClientCertificate));
      } finally {
        mock.timers.reset();
      }
    });
  }

  it('refuses a socket TLS did not authorize, whatever it checked before', () => {
    const req = requestOn(peer);
    apiCaller(req, testCa.ca.trustDomain);
    (req.socket as unknown as { authorized: boolean }).authorized = false;
    assert.throws(() => apiCaller(req, testCa.ca.trustDomain), refusedAs(CONTROL_API_ERRORS.noClientCertificate));
  });

  it('refuses the cached caller for another trust domain', () => {
    const req = requestOn(peer);
    apiCaller(req, testCa.ca.trustDomain);
    assert.throws(() => apiCaller(req, 'other.local'), refusedAs(CONTROL_API_ERRORS.noClientCertificate));
  });
});
