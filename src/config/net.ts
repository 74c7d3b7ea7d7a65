import { isIP } from 'node:net';

export type CidrParse = { ok: true; value: string } | { ok: false; reason: string; hint?: string };

/**
 * Parses a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single address (taken as /32 or /128) and returns
 * it normalized (`<network>/<prefix>`, IPv6 compressed in lower case). Host bits must be zero: `10.0.0.1/8`
 * is usually a typo for a single host or for the network, and guessing which would widen trust silently.
 */
export function parseCidr(text: string): CidrParse {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const family = isIP(address);
  if (family === 0 || address.includes('%')) {
    return { ok: false, reason: `${JSON.stringify(address)} is not an IPv4 or IPv6 address` };
  }
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
      return { ok: false, reason: `prefix length ${JSON.stringify(prefixText)} is not 0 to ${bits}` };
    }
    prefix = Number(prefixText);
  }
  if (prefix === 0) {
    return {
      ok: false,
      reason: 'a /0 trusts every address as a proxy',
      hint: 'then any client can forge X-Forwarded-For; list the proxies you run',
    };
  }
  const value = toBigInt(address, family);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  const network = value & ~hostMask;
  const normalized = `${fromBigInt(network, family)}/${prefix}`;
  if ((value & hostMask) !== 0n) {
    return {
      ok: false,
      reason: `${text} has host bits set`,
      hint: `write ${normalized} for the network, or ${address} alone for one host`,
    };
  }
  return { ok: true, value: normalized };
}

/**
 * Whether a listen host is this machine only: 127.0.0.0/8, ::1 (also IPv4-mapped) or `localhost`
 * (RFC 6761 §6.3 reserves it for loopback).
 */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6) {
    const value = toBigInt(host, 6);
    if (value === 1n) return true;
    // ::ffff:127.0.0.0/104, the IPv4-mapped form of 127.0.0.0/8
    return value >> 24n === 0xffff7fn;
  }
  return false;
}

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Why `host` cannot be a listen host, or undefined when it can (an IP address or a DNS host name). */
export function checkHost(host: string): string | undefined {
  if (isIP(host) !== 0) return host.includes('%') ? 'zone ids (`%eth0`) are not supported' : undefined;
  if (/^[0-9.]+$/.test(host) || host.includes(':')) return `${JSON.stringify(host)} is not a valid IP address`;
  if (!HOST_NAME.test(host)) return `${JSON.stringify(host)} is neither an IP address nor a host name`;
  return undefined;
}

function toBigInt(address: string, family: number): bigint {
  if (family === 4) return address.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
  let text = address;
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) becomes two hextets.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = toBigInt(tail, 4);
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', rest] = text.split('::') as [string, string | undefined];
  const headParts = head === '' ? [] : head.split(':');
  const restParts = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? 0 : 8 - headParts.length - restParts.length;
  const groups = [...headParts, ...new Array<string>(zeros).fill('0'), ...restParts];
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(Number.parseInt(group, 16)), 0n);
}

function fromBigInt(value: bigint, family: number): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => ((value >> shift) & 0xffn).toString()).join('.');
  }
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((value >> shift) & 0xffffn).toString(16));
  // The WHATWG URL parser prints IPv6 in RFC 5952 form (longest zero run compressed, lower case).
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}
