import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_kp_clientAuth,
  id_kp_serverAuth,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
} from '@peculiar/asn1-x509';
import { RampartError } from './errors.ts';

/**
 * SPIFFE identities: the SPIFFE ID grammar (SPIFFE-ID.md §2) and the checks an X509-SVID leaf must pass
 * (X509-SVID.md §3–5). TLS (OpenSSL through Node) verifies the chain, the validity dates and the EKU
 * purpose; it checks host names, never SPIFFE IDs. Everything SPIFFE-specific is here, shared by the
 * control plane (what it issues), the SDK and the gateway (what a peer presents).
 *
 * Certificates are read with @peculiar/asn1-x509 from their DER, never from Node's `subjectAltName`
 * text rendering, so a URI containing `, URI:` cannot pose as a second name.
 */

/** Longest SPIFFE ID, in bytes (SPIFFE-ID.md §2.3). */
export const MAX_SPIFFE_ID_BYTES = 2048;
/** Longest trust domain name, in bytes (SPIFFE-ID.md §2.3, the RFC 3986 host limit). */
export const MAX_TRUST_DOMAIN_BYTES = 255;
/** Scheme and separator; compared exactly (lower case), as the SPIFFE libraries do. */
const PREFIX = 'spiffe://';
/** Path prefix of Rampart's service identities: `spiffe://<td>/svc/<name>`. */
export const SERVICE_PATH_PREFIX = '/svc/';
/**
 * A service name in a SPIFFE ID: the manifest's service-name rule (src/config/schema.ts SERVICE_NAME),
 * which also covers the components (gateway, identity, control).
 */
export const SERVICE_NAME = /^[a-z][a-z0-9-]{0,62}$/;

const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Stable codes. Parsing failures carry `detail.reason` from {@link SPIFFE_ID_REASONS}. */
export const SPIFFE_ERRORS = {
  /** A string is not a valid SPIFFE ID (or trust domain); `detail.reason` says which rule. */
  invalidId: 'CA_ERR_SPIFFE_ID_INVALID',
  /** The certificate is not parseable DER X.509. */
  notX509: 'CA_ERR_SVID_NOT_X509',
  /** An extension appears twice (RFC 5280 §4.2: "MUST NOT include more than one instance"). */
  duplicateExtension: 'CA_ERR_SVID_DUPLICATE_EXTENSION',
  /** No URI SAN at all (or no SAN extension). */
  noUriSan: 'CA_ERR_SVID_NO_URI_SAN',
  /** More than one URI SAN (X509-SVID §2: validators MUST reject). */
  multipleUriSans: 'CA_ERR_SVID_MULTIPLE_URI_SANS',
  /** The URI SAN is not a valid SPIFFE ID. */
  badSpiffeId: 'CA_ERR_SVID_BAD_SPIFFE_ID',
  /** The SPIFFE ID has no path: it names a trust domain, not a workload (X509-SVID §3.1). */
  noPath: 'CA_ERR_SVID_NO_PATH',
  /** The SPIFFE ID belongs to another trust domain. */
  trustDomain: 'CA_ERR_SVID_TRUST_DOMAIN',
  /** The certificate is a CA (cA true, pathLen set, no basic constraints, keyCertSign or cRLSign). */
  notLeaf: 'CA_ERR_SVID_NOT_LEAF',
  /** Key usage missing, not critical, or without digitalSignature (X509-SVID §4.3). */
  keyUsage: 'CA_ERR_SVID_KEY_USAGE',
  /** Extended key usage missing or without both serverAuth and clientAuth (X509-SVID §4.4). */
  extendedKeyUsage: 'CA_ERR_SVID_EXTENDED_KEY_USAGE',
} as const;

/** Why a string is not a SPIFFE ID (`detail.reason` of CA_ERR_SPIFFE_ID_INVALID). */
export const SPIFFE_ID_REASONS = {
  type: 'not_a_string',
  tooLong: 'too_long',
  nonAscii: 'non_ascii',
  scheme: 'scheme',
  trustDomainEmpty: 'trust_domain_empty',
  trustDomainTooLong: 'trust_domain_too_long',
  trustDomainChar: 'trust_domain_character',
  userinfo: 'userinfo',
  port: 'port',
  queryOrFragment: 'query_or_fragment',
  percentEncoding: 'percent_encoding',
  emptySegment: 'empty_segment',
  dotSegment: 'dot_segment',
  pathChar: 'path_character',
} as const;

/** A parsed, valid SPIFFE ID. */
export interface SpiffeId {
  /** The whole ID, `spiffe://<trustDomain><path>`. */
  readonly id: string;
  readonly trustDomain: string;
  /** `''` for a trust domain's own ID, else `/seg/seg…`. */
  readonly path: string;
}

function invalid(reason: string, value: unknown): RampartError {
  return new RampartError(SPIFFE_ERRORS.invalidId, 'invalid SPIFFE ID', {
    status: 400,
    detail: { reason, value: typeof value === 'string' ? value.slice(0, 256) : typeof value },
  });
}

function checkTrustDomain(td: string, value: unknown): void {
  if (td.length === 0) throw invalid(SPIFFE_ID_REASONS.trustDomainEmpty, value);
  if (td.length > MAX_TRUST_DOMAIN_BYTES) throw invalid(SPIFFE_ID_REASONS.trustDomainTooLong, value);
  for (const ch of td) {
    if (TRUST_DOMAIN_CHAR.test(ch)) continue;
    // Name the authority parts SPIFFE-ID.md §2.1 forbids; every other character (upper case included) is plain invalid.
    if (ch === '@') throw invalid(SPIFFE_ID_REASONS.userinfo, value);
    if (ch === ':') throw invalid(SPIFFE_ID_REASONS.port, value);
    if (ch === '?' || ch === '#') throw invalid(SPIFFE_ID_REASONS.queryOrFragment, value);
    if (ch === '%') throw invalid(SPIFFE_ID_REASONS.percentEncoding, value);
    throw invalid(SPIFFE_ID_REASONS.trustDomainChar, value);
  }
}

/**
 * Validates a trust domain name (the authority of a SPIFFE ID: lower-case letters, digits, `.`, `-`,
 * `_`; ≤ 255 bytes). Returns it unchanged; throws CA_ERR_SPIFFE_ID_INVALID.
 */
export function parseTrustDomain(value: string): string {
  if (typeof value !== 'string') throw invalid(SPIFFE_ID_REASONS.type, value);
  checkTrustDomain(value, value);
  return value;
}

/**
 * Parses a SPIFFE ID strictly (SPIFFE-ID.md §2): scheme exactly `spiffe`, a trust domain of
 * `[a-z0-9._-]`, no userinfo or port, a path of non-empty segments of `[A-Za-z0-9._-]` other than `.`
 * and `..`, no trailing `/`, no percent-encoding, no query or fragment, ≤ 2048 bytes. There is one
 * spelling per identity, so IDs compare as strings. Throws CA_ERR_SPIFFE_ID_INVALID with a reason.
 */
export function parseSpiffeId(value: string): SpiffeId {
  if (typeof value !== 'string') throw invalid(SPIFFE_ID_REASONS.type, value);
  if (value.length > MAX_SPIFFE_ID_BYTES) throw invalid(SPIFFE_ID_REASONS.tooLong, value);
  // RFC 3986 URIs are ASCII; checking first makes length in characters equal length in bytes.
  if (!/^[\x21-\x7e]*$/.test(value)) throw invalid(SPIFFE_ID_REASONS.nonAscii, value);
  if (!value.startsWith(PREFIX)) throw invalid(SPIFFE_ID_REASONS.scheme, value);
  const rest = value.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  checkTrustDomain(trustDomain, value);
  if (path !== '') {
    if (path.includes('?') || path.includes('#')) throw invalid(SPIFFE_ID_REASONS.queryOrFragment, value);
    if (path.includes('%')) throw invalid(SPIFFE_ID_REASONS.percentEncoding, value);
    for (const segment of path.slice(1).split('/')) {
      if (segment === '') throw invalid(SPIFFE_ID_REASONS.emptySegment, value);
      if (segment === '.' || segment === '..') throw invalid(SPIFFE_ID_REASONS.dotSegment, value);
      if (!PATH_SEGMENT.test(segment)) throw invalid(SPIFFE_ID_REASONS.pathChar, value);
    }
  }
  return Object.freeze({ id: value, trustDomain, path });
}

/** The SPIFFE ID of a Rampart service: `spiffe://<td>/svc/<name>`. Validates both parts. */
export function serviceSpiffeId(trustDomain: string, serviceName: string): SpiffeId {
  if (typeof serviceName !== 'string' || !SERVICE_NAME.test(serviceName)) {
    throw invalid(SPIFFE_ID_REASONS.pathChar, serviceName);
  }
  return parseSpiffeId(`${PREFIX}${parseTrustDomain(trustDomain)}${SERVICE_PATH_PREFIX}${serviceName}`);
}

/** The service a SPIFFE ID names (`/svc/<name>`, one segment, a valid service name), or null. */
export function serviceNameOf(id: SpiffeId): string | null {
  if (!id.path.startsWith(SERVICE_PATH_PREFIX)) return null;
  const name = id.path.slice(SERVICE_PATH_PREFIX.length);
  return SERVICE_NAME.test(name) ? name : null;
}

/** What {@link svidIdentity} accepts: Node's X509Certificate (`raw`), @peculiar/x509's (`rawData`) or DER bytes. */
export type CertificateInput = { raw: Uint8Array } | { rawData: ArrayBuffer } | Uint8Array;

function derOf(cert: CertificateInput): Uint8Array {
  if (cert instanceof Uint8Array) return cert;
  if ('raw' in cert && cert.raw instanceof Uint8Array) return cert.raw;
  if ('rawData' in cert && cert.rawData instanceof ArrayBuffer) return new Uint8Array(cert.rawData);
  throw svidError(SPIFFE_ERRORS.notX509, { reason: 'unsupported input' });
}

function svidError(code: string, detail: Record<string, unknown>, cause?: unknown): RampartError {
  return new RampartError(code, 'certificate is not a valid SVID', { status: 401, detail, cause });
}

/**
 * The SPIFFE ID of an X509-SVID leaf, after the SPIFFE leaf rules (X509-SVID.md §5.2 and §4):
 * no duplicate extensions; basic constraints present with cA false and no pathLen; key usage present,
 * critical, with digitalSignature and without keyCertSign/cRLSign; extended key usage with serverAuth
 * and clientAuth; exactly one URI SAN, a valid SPIFFE ID with a path, in `trustDomain`. Other SAN
 * types (DNS) are allowed by the standard and ignored.
 *
 * It does NOT verify the signature, chain or validity dates: call it on a certificate TLS already
 * verified against the trust bundle (`socket.getPeerX509Certificate()` after an authorized handshake).
 * Throws CA_ERR_SVID_* (status 401).
 */
export function svidIdentity(cert: CertificateInput, trustDomain: string): SpiffeId {
  let parsed: Certificate;
  try {
    parsed = AsnConvert.parse(derOf(cert), Certificate);
  } catch (cause) {
    if (cause instanceof RampartError) throw cause;
    throw svidError(SPIFFE_ERRORS.notX509, { reason: 'unparseable' }, cause);
  }
  const extensions = parsed.tbsCertificate.extensions ?? [];
  const byId = new Map<string, (typeof extensions)[number]>();
  for (const ext of extensions) {
    if (byId.has(ext.extnID)) throw svidError(SPIFFE_ERRORS.duplicateExtension, { extension: ext.extnID });
    byId.set(ext.extnID, ext);
  }
  const parseExt = <T>(id: string, type: new () => T): T | null => {
    const ext = byId.get(id);
    if (!ext) return null;
    try {
      return AsnConvert.parse(ext.extnValue, type);
    } catch (cause) {
      throw svidError(SPIFFE_ERRORS.notX509, { reason: 'unparseable extension', extension: id }, cause);
    }
  };

  // Leaf, not CA: checked before the name so a CA certificate is refused as such.
  const basic = parseExt(id_ce_basicConstraints, BasicConstraints);
  if (!basic || basic.cA || basic.pathLenConstraint !== undefined) {
    throw svidError(SPIFFE_ERRORS.notLeaf, { reason: basic ? 'cA or pathLen set' : 'no basic constraints' });
  }
  const keyUsage = parseExt(id_ce_keyUsage, KeyUsage);
  if (keyUsage) {
    const bits = keyUsage.toNumber();
    if (bits & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)) {
      throw svidError(SPIFFE_ERRORS.notLeaf, { reason: 'keyCertSign or cRLSign' });
    }
    if (!(bits & KeyUsageFlags.digitalSignature))
      throw svidError(SPIFFE_ERRORS.keyUsage, { reason: 'no digitalSignature' });
    if (!byId.get(id_ce_keyUsage)?.critical) throw svidError(SPIFFE_ERRORS.keyUsage, { reason: 'not critical' });
  } else {
    throw svidError(SPIFFE_ERRORS.keyUsage, { reason: 'no key usage' });
  }
  const eku = parseExt(id_ce_extKeyUsage, ExtendedKeyUsage);
  if (!eku?.includes(id_kp_serverAuth) || !eku.includes(id_kp_clientAuth)) {
    throw svidError(SPIFFE_ERRORS.extendedKeyUsage, { reason: eku ? 'missing serverAuth or clientAuth' : 'no EKU' });
  }

  const san = parseExt(id_ce_subjectAltName, SubjectAlternativeName);
  const uris: string[] = [];
  for (const name of san ?? [])
    if (name.uniformResourceIdentifier !== undefined) uris.push(name.uniformResourceIdentifier);
  if (uris.length === 0) throw svidError(SPIFFE_ERRORS.noUriSan, {});
  if (uris.length > 1) throw svidError(SPIFFE_ERRORS.multipleUriSans, { count: uris.length });
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uris[0] as string);
  } catch (cause) {
    throw svidError(SPIFFE_ERRORS.badSpiffeId, { reason: (cause as RampartError).detail?.reason }, cause);
  }
  if (id.path === '') throw svidError(SPIFFE_ERRORS.noPath, { spiffeId: id.id });
  if (id.trustDomain !== trustDomain) {
    throw svidError(SPIFFE_ERRORS.trustDomain, { spiffeId: id.id, expected: trustDomain });
  }
  return id;
}
