import { randomBytes, randomUUID } from 'node:crypto';
import { BlockList, isIP, isIPv6 } from 'node:net';
import { normalizeIp } from '../listener.ts';
import type { Stage } from '../stage.ts';

/** Accepted inbound request ids: what common proxies mint (UUIDs, hex, base64url), bounded in length. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;
/** W3C Trace Context §3.2: version 00, non-zero trace and parent ids. */
const TRACEPARENT = /^00-(?!0{32})([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-([0-9a-f]{2})$/;

/**
 * Client identity: who is on the other end. The address is the socket's, unless the socket belongs to a
 * trusted proxy, in which case X-Forwarded-For is read right to left, skipping trusted hops, and the
 * first untrusted address is the client (the rightmost-untrusted rule: every hop left of it is
 * client-supplied and could be forged). Request ids from trusted proxies are kept; otherwise minted.
 */
export function createClientIdentity(deps: { manifest: { gateway: { trustedProxies: readonly string[] } } }): Stage {
  const isTrusted = createTrustedProxies(deps.manifest.gateway.trustedProxies);

  return {
    name: 'client',
    request: (ctx) => {
      const { req } = ctx;
      const peer = normalizeIp(ctx.peer);
      const fromProxy = isTrusted(peer);
      const forwarded = req.headers['x-forwarded-for'];
      ctx.clientIp = fromProxy
        ? clientFromForwarded(Array.isArray(forwarded) ? forwarded.join(',') : forwarded, peer, isTrusted)
        : peer;

      const inboundId = req.headers['x-request-id'];
      ctx.requestId =
        fromProxy && typeof inboundId === 'string' && REQUEST_ID.test(inboundId) ? inboundId : randomUUID();

      const parent = req.headers.traceparent;
      const match = typeof parent === 'string' ? TRACEPARENT.exec(parent) : null;
      // One draw for both ids: a new trace id (16 bytes) when none came in, and this hop's span id (8 bytes).
      const ids = randomBytes(24).toString('hex');
      const traceId = match ? match[1]! : ids.slice(0, 32);
      const flags = match ? match[2]! : '01';
      ctx.traceparent = `00-${traceId}-${ids.slice(32)}-${flags}`;
    },
  };
}

function clientFromForwarded(header: string | undefined, peer: string, isTrusted: (ip: string) => boolean): string {
  if (!header) return peer;
  const hops = header.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normalizeIp(hops[i]!.trim());
    if (isIP(hop) === 0) return peer; // garbage: believe nothing further left
    if (!isTrusted(hop)) return hop;
  }
  return peer;
}

/**
 * A membership test for the manifest's `trustedProxies` CIDRs, built once. Takes a normalized address
 * (see normalizeIp). Also used by the listener: trusted proxies are exempt from the per-client cap.
 */
export function createTrustedProxies(cidrs: readonly string[]): (ip: string) => boolean {
  if (cidrs.length === 0) return () => false;
  const trusted = new BlockList();
  for (const cidr of cidrs) {
    const [address, bits] = cidr.split('/') as [string, string | undefined];
    const type = isIPv6(address) ? 'ipv6' : 'ipv4';
    trusted.addSubnet(address, bits === undefined ? (type === 'ipv6' ? 128 : 32) : Number(bits), type);
  }
  return (ip) => trusted.check(ip, isIPv6(ip) ? 'ipv6' : 'ipv4');
}
