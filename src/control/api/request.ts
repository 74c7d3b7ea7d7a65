import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { type SpiffeId, serviceNameOf, svidIdentity } from '../../core/spiffe.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';

/**
 * What a route of the control plane's API gets from a request, and the helpers every route module
 * (the CA's, policy, secrets, audit) uses to read it the same way: JSON bodies only, fields checked
 * by type and size, the caller's identity only from the verified client certificate.
 */

/** A route's handler: the request and its body (null for GET or an empty body); resolves to the JSON answer. */
export type ApiHandler = (req: IncomingMessage, body: Buffer | null) => Promise<unknown>;

/** One route of the API. */
export interface ApiRoute {
  handle: ApiHandler;
  /** Largest body this route reads (default CONTROL_API_DEFAULTS.maxBodyBytes). */
  maxBodyBytes?: number;
}

/**
 * Routes keyed by `"<METHOD> <path>"`, matched exactly (no parameters, no query string): a route
 * that needs a name takes it in its JSON body, so the path never carries data into logs.
 */
export type ApiRoutes = Readonly<Record<string, ApiRoute>>;

/** The verified client certificate of a connection, for the handshake that presented it. */
interface PeerOfHandshake {
  /** The client's Finished message of that handshake: another handshake (a renegotiation) has another. */
  finished: Buffer;
  peer: X509Certificate;
  notBefore: number;
  notAfter: number;
}

/**
 * Client certificates already taken from their connection, per socket. Taking one from OpenSSL builds a
 * new X509Certificate (the leaf and its chain copied) on every request of a keep-alive connection (the
 * SDK's secret reads, issue 6). The entry stands only for the handshake whose Finished message it holds:
 * a TLS 1.2 renegotiation is a new handshake with another Finished message, so its certificate is taken
 * and checked again. The validity is still checked on every request, against the cached dates.
 */
const handshakePeers = new WeakMap<object, PeerOfHandshake>();

/**
 * The verified client certificate of an mTLS request, or a refusal (401). Also refused once outside
 * its validity: TLS checked it at the handshake only, and a keep-alive connection can outlive it.
 */
export function clientCertificate(req: IncomingMessage): X509Certificate {
  const socket = req.socket as TLSSocket;
  const known = socket.authorized ? peerOfHandshake(socket) : undefined;
  if (!known) {
    throw apiError(CONTROL_API_ERRORS.noClientCertificate, {
      reason: socket.authorizationError ? String(socket.authorizationError) : 'none',
    });
  }
  const now = Date.now();
  if (now < known.notBefore || now > known.notAfter) {
    throw apiError(CONTROL_API_ERRORS.noClientCertificate, { reason: 'outside validity' });
  }
  return known.peer;
}

/** The peer certificate of the socket's current handshake, taken from OpenSSL once per handshake. */
function peerOfHandshake(socket: TLSSocket): Omit<PeerOfHandshake, 'finished'> | undefined {
  const finished = socket.getPeerFinished();
  const cached = handshakePeers.get(socket);
  if (cached !== undefined && finished !== undefined && cached.finished.equals(finished)) return cached;
  handshakePeers.delete(socket);
  const peer = socket.getPeerX509Certificate();
  if (!peer) return undefined;
  const known = { peer, notBefore: peer.validFromDate.getTime(), notAfter: peer.validToDate.getTime() };
  // Without a Finished message to tell handshakes apart nothing is kept: the next request takes it again.
  if (finished !== undefined) handshakePeers.set(socket, { ...known, finished });
  return known;
}

/** The caller of an mTLS request: a workload of `trustDomain` whose SVID passes the X509-SVID rules. */
export interface ApiCaller {
  spiffeId: SpiffeId;
  /** `svc/<name>` identities only (services and Rampart's components); null for any other path. */
  service: string | null;
}

/**
 * Callers already checked, per connection: parsing a leaf against the SVID rules costs about a
 * millisecond (a full ASN.1 decode), which a keep-alive client (the SDK's secret reads) would pay on
 * every request. Keyed by the socket and checked against the certificate's fingerprint and the trust
 * domain, so a TLS 1.2 renegotiation that presents another certificate is checked again.
 */
const checkedCallers = new WeakMap<object, { fingerprint: string; trustDomain: string; caller: ApiCaller }>();

/**
 * The caller's SPIFFE identity, taken from the verified client certificate only (never the request).
 * A certificate that chains to the bundle but breaks the SVID rules (two URI SANs, a CA, another trust
 * domain) is refused like no certificate (401).
 */
export function apiCaller(req: IncomingMessage, trustDomain: string): ApiCaller {
  const peer = clientCertificate(req);
  const known = checkedCallers.get(req.socket);
  if (known && known.trustDomain === trustDomain && known.fingerprint === peer.fingerprint256) return known.caller;
  let spiffeId: SpiffeId;
  try {
    spiffeId = svidIdentity(peer, trustDomain);
  } catch (cause) {
    throw apiError(CONTROL_API_ERRORS.noClientCertificate, { reason: 'not an svid' }, cause);
  }
  const caller = Object.freeze({ spiffeId, service: serviceNameOf(spiffeId) });
  checkedCallers.set(req.socket, { fingerprint: peer.fingerprint256, trustDomain, caller });
  return caller;
}

/**
 * `json` if it holds no field outside `allowed`, else 400. Unknown fields are refused, not ignored: a
 * misspelled optional field (`immediat`, `stag`) must not silently mean its default, and nothing in a
 * body may look like it selects something the route does not read.
 */
export function onlyFields(json: Record<string, unknown>, allowed: readonly string[]): Record<string, unknown> {
  for (const key of Object.keys(json)) {
    if (!allowed.includes(key)) throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: 'unknown' });
  }
  return json;
}

/** A JSON object body, or 400. */
export function parseJson(body: Buffer | null): Record<string, unknown> {
  if (body === null) throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'no body' });
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'not json' }, cause);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'not an object' });
  }
  return value as Record<string, unknown>;
}

/** A non-empty string field of at most `max` characters, or 400 naming the field. */
export function stringField(obj: Record<string, unknown>, name: string, max: number): string {
  const value = obj[name];
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: name });
  }
  return value;
}

/** A safe non-negative integer field, or 400 naming the field. */
export function integerField(obj: Record<string, unknown>, name: string): number {
  const value = obj[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: name });
  }
  return value;
}
