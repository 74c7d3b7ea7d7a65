import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it, mock } from 'node:test';
import { RampartError } from '../../core/errors.ts';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import { CONTROL_API_ERRORS } from './errors.ts';
import { apiCaller, clientCertificate } from './request.ts';
import { issueTestSvid } from './testing.ts';

/**
 * A socket TLS authorized with `peer` after a handshake whose client Finished message is `finished`
 * (one socket: a keep-alive connection). `taken` counts the certificates taken from it.
 */
function socketWith(peer: X509Certificate) {
  const socket = {
    authorized: true,
    authorizationError: null,
    peer,
    finished: Buffer.from('handshake-1') as Buffer | undefined,
    taken: 0,
    getPeerFinished: () => socket.finished,
    getPeerX509Certificate: () => {
      socket.taken++;
      return socket.peer;
    },
  };
  return socket;
}

/** A request on a socket TLS authorized with `peer`. */
function requestOn(peer: X509Certificate): IncomingMessage {
  return { socket: socketWith(peer) } as unknown as IncomingMessage;
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

  it('takes the certificate from the connection once per handshake, and checks its validity every time', () => {
    const socket = socketWith(peer);
    const req = { socket } as unknown as IncomingMessage;
    for (let i = 0; i < 3; i++) assert.equal(apiCaller(req, testCa.ca.trustDomain).service, 'orders');
    assert.equal(socket.taken, 1);
    mock.timers.enable({ apis: ['Date'], now: peer.validToDate.getTime() + 1 });
    try {
      assert.throws(() => clientCertificate(req), refusedAs(CONTROL_API_ERRORS.noClientCertificate));
    } finally {
      mock.timers.reset();
    }
  });

  it('takes and checks the certificate of a new handshake on the same connection (renegotiation)', async () => {
    const socket = socketWith(peer);
    const req = { socket } as unknown as IncomingMessage;
    assert.equal(apiCaller(req, testCa.ca.trustDomain).service, 'orders');
    // Another handshake presents the certificate of another service: the caller follows it.
    socket.peer = new X509Certificate((await issueTestSvid(testCa, 'billing')).cert);
    socket.finished = Buffer.from('handshake-2');
    assert.equal(apiCaller(req, testCa.ca.trustDomain).service, 'billing');
    assert.equal(clientCertificate(req), socket.peer);
    assert.equal(socket.taken, 2);
    // And one whose certificate is not an SVID of this trust domain is refused, not served from before.
    const other = await openTestCa({ trustDomain: 'other.local' });
    try {
      socket.peer = new X509Certificate((await issueTestSvid(other, 'orders')).cert);
      socket.finished = Buffer.from('handshake-3');
      assert.throws(() => apiCaller(req, testCa.ca.trustDomain), refusedAs(CONTROL_API_ERRORS.noClientCertificate));
    } finally {
      other.cleanup();
    }
  });

  it('takes the certificate on every request when the connection shows no Finished message', () => {
    const socket = socketWith(peer);
    socket.finished = undefined;
    const req = { socket } as unknown as IncomingMessage;
    for (let i = 0; i < 3; i++) clientCertificate(req);
    assert.equal(socket.taken, 3);
  });

  it('refuses the cached caller for another trust domain', () => {
    const req = requestOn(peer);
    apiCaller(req, testCa.ca.trustDomain);
    assert.throws(() => apiCaller(req, 'other.local'), refusedAs(CONTROL_API_ERRORS.noClientCertificate));
  });
});
