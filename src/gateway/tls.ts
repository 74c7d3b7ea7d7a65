import { constants, createPrivateKey, X509Certificate } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import type { Server as HttpsServer, ServerOptions as HttpsServerOptions } from 'node:https';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import { createSecureContext, type TLSSocket } from 'node:tls';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { GatewayLimits } from '../config/model.ts';
import { RampartError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { GATEWAY_LIMITS } from './defaults.ts';

/**
 * Cipher suites, most preferred first. TLS 1.3 suites are listed explicitly because Node caps the
 * protocol at TLS 1.2 when the list names none. For TLS 1.2: ECDHE key exchange only (forward secrecy)
 * with AEAD ciphers only (GCM, ChaCha20-Poly1305) — Mozilla's "intermediate" profile. No RSA key
 * exchange, no CBC, no SHA-1 MACs, no DHE (slow, and small-group downgrades).
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** A certificate and key that were read, parsed and checked together. */
export interface CertificatePair {
  readonly certPem: string;
  readonly keyPem: string;
  /** The leaf (first) certificate of the chain. */
  readonly leaf: X509Certificate;
  readonly notAfter: Date;
  /** SHA-256 fingerprint of the leaf, for logs. */
  readonly fingerprint: string;
}

/**
 * Reads and validates a certificate chain file and its private key: the leaf parses, the key parses,
 * the key belongs to the leaf, the leaf is inside its validity period, and OpenSSL accepts the pair at
 * its security level. Throws a RampartError (`GW_ERR_TLS_*`) otherwise; the file name is in `detail`.
 */
export function loadCertificatePair(certFile: string, keyFile: string, now = Date.now()): CertificatePair {
  // Synchronous on purpose: a few kilobytes, read at start and on rare reloads, and a reload that runs
  // to completion in one turn of the event loop cannot interleave with another one.
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw tlsError('GW_ERR_TLS_UNREADABLE', file, err);
    }
  };
  return checkCertificatePair(read(certFile), read(keyFile), { certFile, keyFile, now });
}

/** {@link loadCertificatePair} on PEM text already in memory. */
export function checkCertificatePair(
  certPem: string,
  keyPem: string,
  where: { certFile?: string; keyFile?: string; now?: number } = {},
): CertificatePair {
  const now = where.now ?? Date.now();
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certPem);
  } catch (err) {
    throw tlsError('GW_ERR_TLS_CERT_INVALID', where.certFile, err);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw tlsError('GW_ERR_TLS_KEY_INVALID', where.keyFile, err);
  }
  if (!leaf.checkPrivateKey(key)) throw tlsError('GW_ERR_TLS_KEY_MISMATCH', where.keyFile);
  if (now > leaf.validToDate.getTime()) throw tlsError('GW_ERR_TLS_EXPIRED', where.certFile);
  if (now < leaf.validFromDate.getTime()) throw tlsError('GW_ERR_TLS_NOT_YET_VALID', where.certFile);
  try {
    // OpenSSL's own checks (key size at its security level, chain parse) before any server sees it.
    createSecureContext({ ...contextOptions(), cert: certPem, key: keyPem });
  } catch (err) {
    throw tlsError('GW_ERR_TLS_REJECTED', where.certFile, err);
  }
  return { certPem, keyPem, leaf, notAfter: leaf.validToDate, fingerprint: leaf.fingerprint256 };
}

/** The parts of the TLS configuration that are the same for every certificate. */
function contextOptions() {
  return {
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
    // No renegotiation (TLS 1.2 client-initiated renegotiation is a DoS lever; TLS 1.3 has none), no
    // TLS compression (CRIME).
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION | constants.SSL_OP_NO_COMPRESSION,
  } as const;
}

/**
 * Options for `https.createServer`: TLS 1.2 or 1.3 (1.3 is negotiated whenever the client offers it),
 * the cipher list above in the server's order, HTTP/1.1 over ALPN, and the manifest's handshake timeout
 * (Node's is 120 s, which lets idle half-open handshakes pile up).
 */
export function tlsServerOptions(pair: CertificatePair, limits: GatewayLimits): HttpsServerOptions {
  return {
    ...contextOptions(),
    cert: pair.certPem,
    key: pair.keyPem,
    ALPNProtocols: ['http/1.1'],
    handshakeTimeout: limits.tlsHandshakeTimeoutMs,
  };
}

/** Per-connection settings that are not context options. */
export function onSecureConnection(socket: TLSSocket): void {
  // Second lock beside SSL_OP_NO_RENEGOTIATION: any renegotiation attempt is an error on this socket.
  socket.disableRenegotiation();
}

export type CertificateReload =
  | { outcome: 'reloaded' | 'unchanged'; fingerprint: string; notAfter: Date }
  /** The new pair was refused; the previous one stays in service. `code` is the GW_ERR_TLS_* code. */
  | { outcome: 'rejected'; code: string };

export interface CertificateReloader {
  /** The pair in service. */
  current(): CertificatePair;
  /** Reads the files again and swaps the server's context if they hold a new valid pair. Never throws. */
  reload(): CertificateReload;
  /** Stops watching the files. */
  close(): void;
}

export interface CertificateReloaderOptions {
  server: HttpsServer;
  certFile: string;
  keyFile: string;
  initial: CertificatePair;
  limits: GatewayLimits;
  logger: Logger;
  registry: Registry;
  /** Watch the files' directories and reload on change (default true). */
  watch?: boolean;
}

/**
 * Hot certificate reload without dropping connections: `setSecureContext` changes the context new
 * handshakes use; established connections keep theirs. The files' directories are watched (not the
 * files: certificate managers replace files by rename or swap a `..data` symlink, which a watch on the
 * old inode never sees), debounced, and every reload validates the pair first: a bad pair is logged,
 * counted and ignored, and the previous certificate stays in service.
 */
export function createCertificateReloader(options: CertificateReloaderOptions): CertificateReloader {
  const { certFile, keyFile, logger } = options;
  const swap = createCertificateSwap(options, 'reloaded');
  let timer: NodeJS.Timeout | undefined;

  const reload = (): CertificateReload =>
    swap.apply(
      () => loadCertificatePair(certFile, keyFile),
      (err) => ({ file: (err as RampartError).detail?.['file'] }),
    );

  const watchers: FSWatcher[] = [];
  if (options.watch !== false) {
    for (const dir of new Set([dirname(certFile), dirname(keyFile)])) {
      try {
        const watcher = watch(dir, { persistent: false }, () => {
          clearTimeout(timer);
          timer = setTimeout(reload, GATEWAY_LIMITS.certificateReloadDebounceMs);
          timer.unref();
        });
        watcher.on('error', (err) => logger.warn({ err, dir }, 'certificate directory watch failed; reload on SIGHUP'));
        watchers.push(watcher);
      } catch (err) {
        logger.warn({ err, dir }, 'certificate directory cannot be watched; reload on SIGHUP');
      }
    }
  }

  return {
    current: swap.current,
    reload,
    close() {
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}

/** A {@link CertificateReloader} whose pairs are handed to it rather than read from files. */
export interface CertificateInstaller extends CertificateReloader {
  /**
   * Checks the pair (as {@link checkCertificatePair}) and serves it to new connections; a bad pair is
   * logged and counted and the previous one stays in service. Never throws.
   */
  install(certPem: string, keyPem: string): CertificateReload;
}

/**
 * Hot swap for `tls: auto`: the gateway's main thread obtains certificates from the local CA and hands
 * them to each worker, which installs them here. The same guarantees as the files mode: a pair is
 * validated first, `setSecureContext` applies to new handshakes only, established connections keep
 * theirs, so nothing is dropped.
 */
export function createCertificateInstaller(
  options: Omit<CertificateReloaderOptions, 'certFile' | 'keyFile' | 'watch'>,
): CertificateInstaller {
  const swap = createCertificateSwap(options, 'installed');
  return {
    current: swap.current,
    reload: () => {
      const current = swap.current();
      return { outcome: 'unchanged', fingerprint: current.fingerprint, notAfter: current.notAfter };
    },
    install: (certPem, keyPem) => swap.apply(() => checkCertificatePair(certPem, keyPem)),
    close() {},
  };
}

/**
 * What the files mode and `tls: auto` share: a pair that fails its check is counted and logged, and
 * the one in service stays; a new pair is served to new handshakes (established connections keep
 * theirs); the same pair again changes nothing.
 */
function createCertificateSwap(
  options: Pick<CertificateReloaderOptions, 'server' | 'initial' | 'limits' | 'logger' | 'registry'>,
  done: 'reloaded' | 'installed',
) {
  const { server, logger } = options;
  const metrics = certificateMetrics(options.registry);
  let current = options.initial;
  metrics.notAfter.set(current.notAfter.getTime() / 1000);
  return {
    current: (): CertificatePair => current,
    /** Checks the pair `check` returns (or throws for) and serves it. Never throws. */
    apply(
      check: () => CertificatePair,
      refusalDetail: (err: unknown) => Record<string, unknown> = () => ({}),
    ): CertificateReload {
      let pair: CertificatePair;
      try {
        pair = check();
      } catch (err) {
        const code = err instanceof RampartError ? err.code : 'GW_ERR_TLS_REJECTED';
        metrics.reloads.inc({ outcome: 'rejected' });
        logger.error(
          { code, ...refusalDetail(err), err: (err as Error).cause ?? err },
          'new TLS certificate refused; the previous one stays in service',
        );
        return { outcome: 'rejected', code };
      }
      if (pair.certPem === current.certPem && pair.keyPem === current.keyPem) {
        return { outcome: 'unchanged', fingerprint: pair.fingerprint, notAfter: pair.notAfter };
      }
      server.setSecureContext(tlsServerOptions(pair, options.limits));
      current = pair;
      metrics.reloads.inc({ outcome: 'reloaded' });
      metrics.notAfter.set(pair.notAfter.getTime() / 1000);
      logger.info({ fingerprint: pair.fingerprint, notAfter: pair.notAfter.toISOString() }, `TLS certificate ${done}`);
      return { outcome: 'reloaded', fingerprint: pair.fingerprint, notAfter: pair.notAfter };
    },
  };
}

/** Reload outcomes and the leaf's expiry, registered once per registry (several gateways may share one). */
function certificateMetrics(registry: Registry) {
  const reloads =
    (registry.getSingleMetric('rampart_gateway_tls_certificate_reloads_total') as Counter<'outcome'> | undefined) ??
    new Counter({
      name: 'rampart_gateway_tls_certificate_reloads_total',
      help: 'Edge certificate reloads by outcome (reloaded, rejected).',
      labelNames: ['outcome'],
      registers: [registry],
    });
  const notAfter =
    (registry.getSingleMetric('rampart_gateway_tls_certificate_not_after_seconds') as Gauge | undefined) ??
    new Gauge({
      name: 'rampart_gateway_tls_certificate_not_after_seconds',
      help: 'Expiry (Unix seconds) of the edge certificate in service: alert well before it.',
      registers: [registry],
    });
  return { reloads, notAfter };
}

function tlsError(code: string, file: string | undefined, cause?: unknown): RampartError {
  return new RampartError(code, 'TLS certificate or key refused', { status: 500, detail: { file }, cause });
}

/**
 * Whether the certificate is valid for `name` (a DNS name or an IP address), by its subjectAltName only
 * (RFC 6125 §6.4.4: the subject CN is not consulted when SANs exist, and modern clients never use it),
 * with whole-label wildcards only (`*.example.com`, never `w*.example.com`). Matching is OpenSSL's.
 */
export function certificateCovers(leaf: X509Certificate, name: string): boolean {
  if (isIP(name) !== 0) return leaf.checkIP(name) !== undefined;
  return leaf.checkHost(name, { subject: 'never', partialWildcards: false }) !== undefined;
}
