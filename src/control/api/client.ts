import { type Agent, request } from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { RampartError } from '../../core/errors.ts';
import { serviceSpiffeId, svidIdentity } from '../../core/spiffe.ts';
import { COMPONENT_SERVICE_NAMES, CONTROL_API_DEFAULTS } from './defaults.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';

/** Where the control plane is and how to trust it. */
export interface ControlTarget {
  /** `https://127.0.0.1:<port>`. */
  url: string;
  /** CA certificates (PEM) that verify the control plane's server certificate. */
  bundle: string;
  trustDomain: string;
  timeoutMs?: number;
}

/** An issued SVID as the API returns it. */
export interface SvidResponse {
  spiffeId: string;
  /** The leaf, PEM. */
  certificate: string;
  /** Leaf first; today the leaf alone (the signing CAs are self-signed roots in the bundle). */
  chain: string[];
  notBefore: number;
  notAfter: number;
  bundle: BundleResponse;
}

/** The trust bundle as the API returns it. */
export interface BundleResponse {
  sequence: number;
  /** Concatenated PEM of every CA to trust. */
  pem: string;
}

/**
 * `checkServerIdentity` for a connection to a Rampart workload: the peer's leaf must be an X509-SVID
 * (core/spiffe.ts rules) whose SPIFFE ID is exactly `expected`. Host names are not checked: on
 * loopback they say nothing; the SPIFFE ID is the identity (DESIGN.md: "Node checks hostnames, not
 * SPIFFE IDs").
 */
export function spiffeServerCheck(expected: string, trustDomain: string) {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    try {
      const id = svidIdentity({ raw: cert.raw }, trustDomain);
      if (id.id === expected) return undefined;
      return apiError(CONTROL_API_ERRORS.wrongIdentity, { expected, presented: id.id });
    } catch (cause) {
      return apiError(CONTROL_API_ERRORS.wrongIdentity, { expected }, cause);
    }
  };
}

interface Exchange {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  bearer?: string;
  /** Client certificate and key (renewal). */
  cert?: string;
  key?: string;
  /**
   * A keep-alive agent for a client that sends often (the audit client). Node keys its pooled
   * connections by the TLS options too, so a renewed certificate never rides an old connection. The
   * agent should carry the same `checkServerIdentity` (agent options override request options when a
   * connection is made); Node did not reuse connections when it was given per request only.
   */
  agent?: Agent;
}

/**
 * One request to the control plane API over TLS 1.2+, trusting only `target.bundle` and only a server
 * whose SPIFFE ID is the control plane's. Resolves with the JSON body of a 2xx answer; rejects with
 * the API's error code (as a RampartError) for a refusal, CA_ERR_API_UNAVAILABLE when it cannot be
 * reached or answers something unusable.
 */
export function controlRequest<T>(target: ControlTarget, exchange: Exchange): Promise<T> {
  const url = new URL(exchange.path, target.url);
  const expected = serviceSpiffeId(target.trustDomain, COMPONENT_SERVICE_NAMES.control).id;
  const body = exchange.body === undefined ? undefined : Buffer.from(JSON.stringify(exchange.body));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(body.length);
  }
  if (exchange.bearer) headers.authorization = `Bearer ${exchange.bearer}`;
  const timeoutMs = target.timeoutMs ?? CONTROL_API_DEFAULTS.clientTimeoutMs;
  return new Promise<T>((resolve, reject) => {
    const req = request(url, {
      method: exchange.method,
      headers,
      ca: target.bundle,
      cert: exchange.cert,
      key: exchange.key,
      minVersion: 'TLSv1.2',
      checkServerIdentity: spiffeServerCheck(expected, target.trustDomain),
      // By default one exchange per connection: the client certificate differs per renewal.
      agent: exchange.agent ?? false,
      timeout: timeoutMs,
    });
    const timer = setTimeout(
      () => req.destroy(apiError(CONTROL_API_ERRORS.unavailable, { reason: 'timeout' })),
      timeoutMs,
    );
    timer.unref();
    req.on('timeout', () => req.destroy(apiError(CONTROL_API_ERRORS.unavailable, { reason: 'timeout' })));
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof RampartError ? err : apiError(CONTROL_API_ERRORS.unavailable, { reason: 'network' }, err));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > CONTROL_API_DEFAULTS.maxResponseBytes) {
          req.destroy(apiError(CONTROL_API_ERRORS.unavailable, { reason: 'response too large' }));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        clearTimeout(timer);
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          // No cause: JSON.parse quotes the text around the bad token, which may be part of a secret
          // (operator reveal) or a credential.
          reject(apiError(CONTROL_API_ERRORS.unavailable, { reason: 'not json', status: res.statusCode }));
          return;
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          resolve(parsed as T);
          return;
        }
        const code = (parsed as { error?: unknown }).error;
        reject(
          new RampartError(typeof code === 'string' ? code : CONTROL_API_ERRORS.unavailable, 'control plane refused', {
            status,
          }),
        );
      });
      res.on('error', (err) => reject(apiError(CONTROL_API_ERRORS.unavailable, { reason: 'network' }, err)));
    });
    req.end(body);
  });
}

/** Launcher: mints a join token for `service` with the launcher credential. */
export function requestJoinToken(
  target: ControlTarget,
  credential: string,
  service: string,
): Promise<{ token: string; expiresAt: number }> {
  return controlRequest(target, { method: 'POST', path: '/v1/join-tokens', bearer: credential, body: { service } });
}

/** Workload: first SVID, with the join token and a CSR. */
export function requestSvid(target: ControlTarget, token: string, csr: string): Promise<SvidResponse> {
  return controlRequest(target, { method: 'POST', path: '/v1/svids', body: { token, csr } });
}

/** Workload: renewal over mTLS with the current SVID. */
export function requestRenewal(
  target: ControlTarget,
  current: { cert: string; key: string },
  csr: string,
): Promise<SvidResponse> {
  return controlRequest(target, { method: 'POST', path: '/v1/svids/renew', body: { csr }, ...current });
}

/** The current trust bundle. */
export function requestBundle(target: ControlTarget): Promise<BundleResponse> {
  return controlRequest(target, { method: 'GET', path: '/v1/bundle' });
}

/** Workload: tells the CA (over mTLS, as the holder of its current SVID) that it installed bundle `sequence`. */
export function acknowledgeBundle(
  target: ControlTarget,
  current: { cert: string; key: string },
  sequence: number,
): Promise<{ acknowledged: number }> {
  return controlRequest(target, { method: 'POST', path: '/v1/bundle/ack', body: { sequence }, ...current });
}
