import { createHash, X509Certificate as NodeX509Certificate } from 'node:crypto';
import type { Kek } from '../../core/kek.ts';
import {
  type CertificateInput,
  parseTrustDomain,
  type SpiffeId,
  serviceNameOf,
  serviceSpiffeId,
  svidIdentity,
} from '../../core/spiffe.ts';
import { buildBundle, type SpiffeBundleDocument, type TrustBundle, toSpiffeBundle } from './bundle.ts';
import { verifyCsr } from './csr.ts';
import { type AuthorityRow, CaStore, type IssuanceRow, openCaDatabase, type SlotName } from './database.ts';
import { CA_DEFAULTS } from './defaults.ts';
import {
  edgeJournalSubject,
  edgeNamesOrThrow,
  type IssuedEdgeCertificate,
  signEdgeCertificate,
} from './edge-certificate.ts';
import { CA_ERRORS, caError } from './errors.ts';
import { createIssuanceJournal, type IssuanceJournal } from './issuance-journal.ts';
import {
  checkJoinToken,
  consumeJoinToken,
  type MintedJoinToken,
  mintJoinToken,
  redeemJoinToken,
} from './join-tokens.ts';
import { autoSigningThreads, createLocalIssuer, createWorkerIssuer, type LeafIssuer } from './leaf-issuer.ts';
import { newSerial } from './serial.ts';
import { createSigningCa, fingerprint, loadSigningCa, type SigningCa } from './signing-ca.ts';
import { type CaStatus, computeStatus, rotationPoints } from './status.ts';

/** Options of {@link openCertificateAuthority}. Durations in milliseconds; defaults in CA_DEFAULTS. */
export interface CertificateAuthorityOptions {
  /** The manifest's trust domain. A database made for another trust domain is refused. */
  trustDomain: string;
  /** SQLite file in the control plane's data directory (`:memory:` for tests). */
  databasePath: string;
  /** Wraps the CA keys at rest. The CA never destroys it; its owner does. */
  kek: Kek;
  /** Injectable clock (ms since the epoch). Default `Date.now`. */
  clock?: () => number;
  caLifetimeMs?: number;
  svidTtlMs?: number;
  /** Lifetime of edge certificates (the gateway's `tls: auto`). */
  edgeCertificateTtlMs?: number;
  joinTokenTtlMs?: number;
  clockSkewMs?: number;
  bundlePropagationMs?: number;
  bundleRefreshHintMs?: number;
  /** Warn when the active CA expires within this long. Default: two SVID TTLs. */
  anchorWarningMs?: number;
  /** Threads that verify CSRs and sign leaves (0: this thread). Default `auto` (CA_DEFAULTS.signingThreads). */
  signingThreads?: number | 'auto';
  /** Called with every lifecycle event (also returned by `tick`): for logs, metrics and audit. */
  onEvent?: (event: CaEvent) => void;
}

/** Resolved settings. */
export interface CaSettings {
  trustDomain: string;
  caLifetimeMs: number;
  svidTtlMs: number;
  edgeCertificateTtlMs: number;
  joinTokenTtlMs: number;
  clockSkewMs: number;
  bundlePropagationMs: number;
  bundleRefreshHintMs: number;
  anchorWarningMs: number;
  signingThreads: number;
}

/** Lifecycle events. */
export type CaEvent =
  | { type: 'ca.initialized'; generation: number; slot: SlotName; notAfter: number; bundleSequence: number }
  | {
      type: 'ca.prepared';
      generation: number;
      slot: SlotName;
      notAfter: number;
      bundleSequence: number;
      activateAt: number;
      forced: boolean;
    }
  | { type: 'ca.activated'; generation: number; slot: SlotName; previous: number | null; emergency: boolean }
  | { type: 'ca.retired'; generation: number; slot: SlotName; bundleSequence: number };

/** An issued X509-SVID, with the bundle that verifies it and every peer. */
export interface IssuedSvid {
  spiffeId: string;
  serviceName: string;
  /** 32 lower-case hex digits. */
  serial: string;
  certificatePem: string;
  certificateDer: Uint8Array;
  notBefore: number;
  notAfter: number;
  /** Generation of the signing CA. */
  generation: number;
  bundle: TrustBundle;
}

/** Result of {@link CertificateAuthority.rotateNow}. */
export interface RotationResult {
  generation: number;
  slot: SlotName;
  /** Bundle sequence that published the new CA. */
  publishedSequence: number;
  /** True when the new CA already signs; else it activates by `activateBy` (sooner once every holder has the bundle). */
  activated: boolean;
  activateBy: number;
}

/** The certificate authority (issue 4). All methods are safe to call concurrently. */
export interface CertificateAuthority {
  readonly trustDomain: string;
  readonly settings: Readonly<CaSettings>;
  /**
   * Issues an SVID for `serviceName` to a caller the control plane authenticated by other means (for
   * example the gateway, which the control plane launches itself). Recorded as attestation `direct`.
   */
  issue(request: { csr: string | Uint8Array; serviceName: string }): Promise<IssuedSvid>;
  /** First issuance: redeems the single-use join token (after the CSR checks pass) and issues for its service. */
  issueWithJoinToken(request: { token: string; csr: string | Uint8Array }): Promise<IssuedSvid>;
  /**
   * Renewal: `peerCertificate` is the client certificate of the mTLS connection the request came on
   * (TLS verified it against the bundle). It must be an SVID this CA issued, unexpired, naming a
   * service; the new SVID names the same service.
   */
  renew(request: { peerCertificate: CertificateInput; csr: string | Uint8Array }): Promise<IssuedSvid>;
  /**
   * Issues an edge-server certificate (edge-certificate.ts) for the CSR's key and `names` (DNS names
   * and IP literals, validated strictly: CA_ERR_EDGE_NAME). The caller decides who may ask and which
   * names (the control API: the gateway's SVID, names from the manifest). Journaled like an SVID.
   */
  issueEdgeCertificate(request: { csr: string | Uint8Array; names: readonly string[] }): Promise<IssuedEdgeCertificate>;
  /** Mints a join token for `serviceName` (default TTL 600 s). */
  mintJoinToken(serviceName: string, ttlMs?: number): MintedJoinToken;
  /** Redeems a join token (single use) and returns its service; `issueWithJoinToken` is the usual path. */
  redeemJoinToken(token: string): string;
  /** The current trust bundle. */
  bundle(): TrustBundle;
  /** The bundle as a SPIFFE bundle document (JWK set with `spiffe_sequence`). */
  spiffeBundle(): SpiffeBundleDocument;
  /**
   * Records that the holder of SVID `serial` installed bundle `sequence` (its trust store and its TLS
   * contexts). Forced rotations activate early once every live holder acknowledged; `status` warns
   * about holders behind.
   */
  acknowledgeBundle(serial: string, sequence: number): void;
  /** Drives rotation (prepare, activate, retire) and housekeeping. Call at start and every few seconds. */
  tick(now?: number): Promise<CaEvent[]>;
  /**
   * Forces a rotation: prepares and publishes a successor now (or takes the prepared one) and activates
   * it once every live SVID holder acknowledged the new bundle, at the latest after the propagation
   * time. `immediate` activates at once (key compromise): peers without the new bundle then refuse new
   * SVIDs until they refresh.
   */
  rotateNow(options?: { now?: number; immediate?: boolean }): Promise<RotationResult>;
  /** Slots, expiries, schedule and warnings. */
  status(now?: number): CaStatus;
  /** Closes the database. Pending operations fail with CA_ERR_CLOSED. */
  close(): void;
}

function resolveSettings(options: CertificateAuthorityOptions): CaSettings {
  let trustDomain: string;
  try {
    trustDomain = parseTrustDomain(options.trustDomain);
  } catch (cause) {
    throw caError(CA_ERRORS.config, { field: 'trustDomain' }, cause);
  }
  const svidTtlMs = options.svidTtlMs ?? CA_DEFAULTS.svidTtlMs;
  const settings: CaSettings = {
    trustDomain,
    caLifetimeMs: options.caLifetimeMs ?? CA_DEFAULTS.caLifetimeMs,
    svidTtlMs,
    // Unset, it shrinks with a short CA lifetime (tests, experiments) instead of refusing it.
    edgeCertificateTtlMs:
      options.edgeCertificateTtlMs ??
      Math.min(CA_DEFAULTS.edgeCertificateTtlMs, Math.floor((options.caLifetimeMs ?? CA_DEFAULTS.caLifetimeMs) / 6)),
    joinTokenTtlMs: options.joinTokenTtlMs ?? CA_DEFAULTS.joinTokenTtlMs,
    clockSkewMs: options.clockSkewMs ?? CA_DEFAULTS.clockSkewMs,
    bundlePropagationMs: options.bundlePropagationMs ?? CA_DEFAULTS.bundlePropagationMs,
    bundleRefreshHintMs: options.bundleRefreshHintMs ?? CA_DEFAULTS.bundleRefreshHintMs,
    anchorWarningMs: options.anchorWarningMs ?? CA_DEFAULTS.anchorWarningSvidTtls * svidTtlMs,
    signingThreads:
      (options.signingThreads ?? CA_DEFAULTS.signingThreads) === 'auto'
        ? autoSigningThreads()
        : (options.signingThreads as number),
  };
  for (const [field, value] of Object.entries(settings)) {
    if (field !== 'trustDomain' && (!Number.isSafeInteger(value) || (value as number) < 0)) {
      throw caError(CA_ERRORS.config, { field, value });
    }
  }
  const check = (ok: boolean, field: string, rule: string) => {
    if (!ok) throw caError(CA_ERRORS.config, { field, rule });
  };
  check(settings.svidTtlMs >= CA_DEFAULTS.minSvidTtlMs, 'svidTtlMs', `at least ${CA_DEFAULTS.minSvidTtlMs} ms`);
  // ⅙ of the CA lifetime (activation to expiry) must cover one SVID: otherwise every SVID the old CA
  // signs just before activation is cut short, and rotation never has slack (SPIRE warns likewise).
  check(settings.caLifetimeMs >= 6 * settings.svidTtlMs, 'caLifetimeMs', 'at least 6 × svidTtlMs');
  // The same rule for edge certificates, and the same floor and skew bound as SVIDs.
  check(
    settings.edgeCertificateTtlMs >= CA_DEFAULTS.minSvidTtlMs,
    'edgeCertificateTtlMs',
    `at least ${CA_DEFAULTS.minSvidTtlMs} ms`,
  );
  check(
    settings.caLifetimeMs >= 6 * settings.edgeCertificateTtlMs,
    'caLifetimeMs',
    'at least 6 × edgeCertificateTtlMs',
  );
  check(settings.clockSkewMs < settings.edgeCertificateTtlMs, 'clockSkewMs', 'less than edgeCertificateTtlMs');
  // A published CA must be able to wait out the propagation time between the prepare point (½) and
  // the activation point (⅚).
  check(settings.bundlePropagationMs <= settings.caLifetimeMs / 3, 'bundlePropagationMs', 'at most ⅓ of caLifetimeMs');
  check(settings.clockSkewMs < settings.svidTtlMs, 'clockSkewMs', 'less than svidTtlMs');
  check(settings.joinTokenTtlMs >= 1_000, 'joinTokenTtlMs', 'at least 1 s');
  return Object.freeze(settings);
}

function pemOf(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}

function nodeCertificate(input: CertificateInput): NodeX509Certificate {
  if (input instanceof NodeX509Certificate) return input;
  const der =
    input instanceof Uint8Array
      ? input
      : 'raw' in input
        ? input.raw
        : 'rawData' in input
          ? new Uint8Array(input.rawData)
          : new Uint8Array(0);
  return new NodeX509Certificate(der);
}

const otherSlot = (slot: SlotName): SlotName => (slot === 'A' ? 'B' : 'A');

/**
 * Opens the certificate authority: the database (schema, trust domain check), every live CA key
 * unwrapped with the KEK (a wrong KEK fails here with CA_ERR_SEALED, not at the first issuance), then
 * one `tick` so that a new database gets its first CA and a CA that was down catches up.
 */
export async function openCertificateAuthority(options: CertificateAuthorityOptions): Promise<CertificateAuthority> {
  const settings = resolveSettings(options);
  const store = new CaStore(openCaDatabase(options.databasePath));
  try {
    store.transaction(() => {
      const stored = store.meta('trust_domain');
      if (stored === null) store.setMeta('trust_domain', settings.trustDomain);
      else if (stored !== settings.trustDomain) {
        throw caError(CA_ERRORS.trustDomainMismatch, { stored, configured: settings.trustDomain });
      }
    });
    const authority = new Authority(settings, store, options);
    await authority.unseal();
    await authority.tick();
    return authority;
  } catch (err) {
    store.close();
    throw err;
  }
}

class Authority implements CertificateAuthority {
  readonly trustDomain: string;
  readonly settings: Readonly<CaSettings>;
  readonly #store: CaStore;
  readonly #kek: Kek;
  readonly #clock: () => number;
  readonly #onEvent: ((event: CaEvent) => void) | undefined;
  /** Unwrapped signing CAs by generation; promises, so concurrent first uses unwrap once. */
  readonly #cas = new Map<number, Promise<SigningCa>>();
  /** Verifies CSRs and signs leaves, here or on worker threads. */
  readonly #issuer: LeafIssuer;
  readonly #journal: IssuanceJournal;
  /** Serializes tick and rotateNow: each reads state, may await key generation, then writes. */
  #lifecycle: Promise<unknown> = Promise.resolve();
  /** The bundle, rebuilt after any lifecycle change (only this instance changes CA state). */
  #bundleCache: TrustBundle | null = null;
  #closed = false;

  constructor(settings: CaSettings, store: CaStore, options: CertificateAuthorityOptions) {
    this.trustDomain = settings.trustDomain;
    this.settings = settings;
    this.#store = store;
    this.#journal = createIssuanceJournal(store);
    this.#issuer = settings.signingThreads > 0 ? createWorkerIssuer(settings.signingThreads) : createLocalIssuer();
    this.#kek = options.kek;
    this.#clock = options.clock ?? Date.now;
    this.#onEvent = options.onEvent;
  }

  #open(): CaStore {
    if (this.#closed) throw caError(CA_ERRORS.closed);
    return this.#store;
  }

  #ca(row: AuthorityRow): Promise<SigningCa> {
    let signer = this.#cas.get(row.generation);
    if (!signer) {
      if (row.wrappedKey === null) return Promise.reject(caError(CA_ERRORS.noActiveCa, { generation: row.generation }));
      signer = loadSigningCa({
        slot: row.slot,
        generation: row.generation,
        certificate: row.certificate,
        wrappedKey: row.wrappedKey,
        kek: this.#kek,
      });
      // A failed unwrap is not cached: a fixed KEK (after a restart) can succeed.
      const pending = signer;
      pending.catch(() => {
        if (this.#cas.get(row.generation) === pending) this.#cas.delete(row.generation);
      });
      this.#cas.set(row.generation, pending);
    }
    return signer;
  }

  /** Unwraps every live CA key now, so a wrong KEK is reported at start. */
  async unseal(): Promise<void> {
    for (const row of this.#open().liveAuthorities()) await this.#ca(row);
  }

  #emit(events: CaEvent[], event: CaEvent): void {
    // Every lifecycle change is emitted: the cached bundle is stale from here on.
    this.#bundleCache = null;
    events.push(event);
    try {
      this.#onEvent?.(event);
    } catch {
      // An observer's failure must not break rotation.
    }
  }

  #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lifecycle.then(fn, fn);
    this.#lifecycle = run.catch(() => undefined);
    return run;
  }

  // ── issuance ────────────────────────────────────────────────────────────────────────────────

  issue(request: { csr: string | Uint8Array; serviceName: string }): Promise<IssuedSvid> {
    return this.#issue(request.serviceName, request.csr, 'direct', null, null);
  }

  async issueWithJoinToken(request: { token: string; csr: string | Uint8Array }): Promise<IssuedSvid> {
    // The token is checked first without spending it (cheap: requests without a real token cost no
    // signature work), the CSR is verified and the leaf signed, and only then is the token spent,
    // atomically: a bad CSR or a CA that cannot sign does not burn it, and of concurrent uses one wins.
    const checked = checkJoinToken(this.#open(), request.token, this.#clock());
    return this.#issue(checked.serviceName, request.csr, 'join-token', null, () => {
      consumeJoinToken(this.#open(), checked, this.#clock());
    });
  }

  async renew(request: { peerCertificate: CertificateInput; csr: string | Uint8Array }): Promise<IssuedSvid> {
    const store = this.#open();
    const id: SpiffeId = svidIdentity(request.peerCertificate, this.trustDomain);
    const serviceName = serviceNameOf(id);
    if (serviceName === null) throw caError(CA_ERRORS.renewalNotService, { spiffeId: id.id });
    const peer = nodeCertificate(request.peerCertificate);
    const serial = peer.serialNumber.toLowerCase();
    const record = store.issuance(serial);
    const spkiSha256 = createHash('sha256')
      .update(peer.publicKey.export({ format: 'der', type: 'spki' }))
      .digest('hex');
    if (!record || record.spiffeId !== id.id || record.publicKeySha256 !== spkiSha256) {
      throw caError(CA_ERRORS.renewalUnknown, { serial, spiffeId: id.id });
    }
    const issuer = store.authority(record.generation);
    if (!issuer || issuer.state === 'retired' || !peer.verify(new NodeX509Certificate(issuer.certificate).publicKey)) {
      throw caError(CA_ERRORS.renewalUnknown, { serial, reason: 'issuer' });
    }
    if (record.notAfter <= this.#clock())
      throw caError(CA_ERRORS.renewalExpired, { serial, notAfter: record.notAfter });
    return this.#issue(serviceName, request.csr, 'svid', serial, null);
  }

  #activeOrThrow(now: number): AuthorityRow {
    const active = this.#open().authorityInState('active');
    if (!active || now >= active.notAfter) {
      throw caError(CA_ERRORS.noActiveCa, { reason: active ? 'expired' : 'none', notAfter: active?.notAfter });
    }
    return active;
  }

  #spiffeIdFor(serviceName: string): string {
    try {
      return serviceSpiffeId(this.trustDomain, serviceName).id;
    } catch (cause) {
      throw caError(CA_ERRORS.serviceName, { serviceName: String(serviceName).slice(0, 100) }, cause);
    }
  }

  /**
   * Verifies the CSR and signs with the active CA (here or on a signing thread), runs `beforeRecord`
   * once (spending a join token), and records the SVID durably before returning it.
   */
  async #issue(
    serviceName: string,
    csr: string | Uint8Array,
    attestation: IssuanceRow['attestation'],
    renewsSerial: string | null,
    beforeRecord: (() => void) | null,
  ): Promise<IssuedSvid> {
    const spiffeId = this.#spiffeIdFor(serviceName);
    let pendingBeforeRecord = beforeRecord;
    // Up to three attempts cover the races: the active CA retired between signing and recording
    // (rotation under load), or — astronomically unlikely — a serial collision.
    for (let attempt = 0; ; attempt++) {
      const now = this.#clock();
      const active = this.#activeOrThrow(now);
      const ca = await this.#ca(active);
      const serial = newSerial();
      const leaf = await this.#issuer.issue(ca, {
        csr,
        spiffeId,
        serial,
        notBefore: Math.max(now - this.settings.clockSkewMs, active.notBefore),
        notAfter: Math.min(now + this.settings.svidTtlMs, active.notAfter),
      });
      pendingBeforeRecord?.();
      pendingBeforeRecord = null;
      const row: IssuanceRow = {
        serial,
        generation: active.generation,
        spiffeId,
        notBefore: leaf.notBefore,
        notAfter: leaf.notAfter,
        publicKeySha256: leaf.publicKeySha256,
        issuedAt: now,
        attestation,
        renewsSerial,
      };
      if (!(await this.#journal.record(row))) {
        // Its CA retired while this SVID was signed (rotation under load), or the serial was taken.
        if (attempt >= 2) throw caError(CA_ERRORS.noActiveCa, { reason: 'rotating' });
        continue;
      }
      return {
        spiffeId,
        serviceName,
        serial,
        certificatePem: pemOf(leaf.certificateDer),
        certificateDer: leaf.certificateDer,
        notBefore: row.notBefore,
        notAfter: row.notAfter,
        generation: active.generation,
        bundle: this.bundle(),
      };
    }
  }

  async issueEdgeCertificate(request: {
    csr: string | Uint8Array;
    names: readonly string[];
  }): Promise<IssuedEdgeCertificate> {
    const names = edgeNamesOrThrow(request.names);
    // Rare (one per gateway per few hours): verified and signed on this thread, not the signing pool.
    const csr = await verifyCsr(request.csr);
    for (let attempt = 0; ; attempt++) {
      const now = this.#clock();
      const active = this.#activeOrThrow(now);
      const ca = await this.#ca(active);
      const serial = newSerial();
      const cert = await signEdgeCertificate(ca, {
        csr,
        names,
        serial,
        notBefore: Math.max(now - this.settings.clockSkewMs, active.notBefore),
        notAfter: Math.min(now + this.settings.edgeCertificateTtlMs, active.notAfter),
      });
      const row: IssuanceRow = {
        serial,
        generation: active.generation,
        spiffeId: edgeJournalSubject(names),
        notBefore: cert.notBefore.getTime(),
        notAfter: cert.notAfter.getTime(),
        publicKeySha256: csr.publicKeySha256,
        issuedAt: now,
        attestation: 'svid',
        renewsSerial: null,
      };
      // Durable before it is returned, and it keeps its CA in the bundle until it expires.
      if (!(await this.#journal.record(row))) {
        if (attempt >= 2) throw caError(CA_ERRORS.noActiveCa, { reason: 'rotating' });
        continue;
      }
      const certificateDer = new Uint8Array(cert.rawData);
      return {
        serial,
        certificatePem: pemOf(certificateDer),
        certificateDer,
        names,
        notBefore: row.notBefore,
        notAfter: row.notAfter,
        generation: active.generation,
        bundle: this.bundle(),
      };
    }
  }

  // ── join tokens, bundle ─────────────────────────────────────────────────────────────────────

  mintJoinToken(serviceName: string, ttlMs: number = this.settings.joinTokenTtlMs): MintedJoinToken {
    return mintJoinToken(this.#open(), this.trustDomain, serviceName, ttlMs, this.#clock());
  }

  redeemJoinToken(token: string): string {
    return redeemJoinToken(this.#open(), token, this.#clock());
  }

  bundle(): TrustBundle {
    const store = this.#open();
    this.#bundleCache ??= buildBundle(this.trustDomain, store.bundleSequence(), store.liveAuthorities());
    return this.#bundleCache;
  }

  spiffeBundle(): SpiffeBundleDocument {
    return toSpiffeBundle(this.bundle(), this.settings.bundleRefreshHintMs);
  }

  acknowledgeBundle(serial: string, sequence: number): void {
    const store = this.#open();
    const normalized = String(serial).toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(normalized) || store.issuance(normalized) === null) {
      throw caError(CA_ERRORS.renewalUnknown, { serial: normalized.slice(0, 64) });
    }
    if (!Number.isSafeInteger(sequence) || sequence < 1 || sequence > store.bundleSequence()) {
      throw caError(CA_ERRORS.bundleSequence, { sequence });
    }
    store.acknowledgeBundle(normalized, sequence, this.#clock());
  }

  // ── rotation ────────────────────────────────────────────────────────────────────────────────

  tick(now?: number): Promise<CaEvent[]> {
    return this.#serialized(async () => {
      const at = now ?? this.#clock();
      const events: CaEvent[] = [];
      // One transition per step until none applies: after downtime several may be due at once
      // (retire the old, prepare, activate). Bounded: each step changes a state forward.
      for (let step = 0; step < 8; step++) {
        if (!(await this.#step(at, events))) break;
      }
      this.#open().purge(at, CA_DEFAULTS.joinTokenRetentionMs);
      return events;
    });
  }

  /** Performs the next due transition, if any. Returns whether one happened. */
  async #step(now: number, events: CaEvent[]): Promise<boolean> {
    const store = this.#open();
    const live = store.liveAuthorities();
    if (live.length === 0) return this.#create(now, 'A', 'initial', events);

    // Retire: a retiring CA leaves the bundle once every SVID it signed has expired.
    for (const row of live) {
      if (row.state !== 'retiring') continue;
      const last = store.lastLeafNotAfter(row.generation);
      if (last === null || last <= now || row.notAfter <= now) {
        const sequence = store.transaction(() => {
          store.retire(row.generation, now);
          return store.bumpBundleSequence(now);
        });
        this.#cas.delete(row.generation);
        this.#issuer.forget(row.generation);
        this.#emit(events, {
          type: 'ca.retired',
          generation: row.generation,
          slot: row.slot,
          bundleSequence: sequence,
        });
        return true;
      }
    }

    const active = live.find((a) => a.state === 'active') ?? null;
    const prepared = live.find((a) => a.state === 'prepared') ?? null;
    const activeUsable = active !== null && now < active.notAfter;

    if (prepared) {
      const due =
        !activeUsable ||
        now >= (prepared.activateAt ?? 0) ||
        (prepared.forced && store.holdersBehind(prepared.publishedSequence, prepared.createdAt, now) === 0);
      if (!due) return false;
      store.transaction(() => store.activate(prepared.generation, now));
      this.#emit(events, {
        type: 'ca.activated',
        generation: prepared.generation,
        slot: prepared.slot,
        previous: active?.generation ?? null,
        emergency: !activeUsable,
      });
      return true;
    }

    if (active && activeUsable && now < rotationPoints(active).prepareAt) return false;
    const slot = active ? otherSlot(active.slot) : live[0]?.slot === 'A' ? 'B' : 'A';
    if (live.some((a) => a.slot === slot)) return false; // still retiring there: status warns
    return this.#create(now, slot, activeUsable ? 'scheduled' : 'emergency', events);
  }

  /**
   * Generates a CA (outside any transaction: key generation awaits), then records it in one
   * transaction that re-checks the slot is still free. `initial` makes it active at once; `emergency`
   * (no usable active CA) makes it due at once; `scheduled` publishes it to activate at ⅚ of the
   * active CA's lifetime, and never sooner than the propagation time.
   */
  async #create(
    now: number,
    slot: SlotName,
    kind: 'initial' | 'scheduled' | 'emergency' | 'forced' | 'forced-immediate',
    events: CaEvent[],
  ): Promise<boolean> {
    const store = this.#open();
    const generation = store.nextGeneration();
    const made = await createSigningCa({
      trustDomain: this.trustDomain,
      slot,
      generation,
      now,
      lifetimeMs: this.settings.caLifetimeMs,
      skewMs: this.settings.clockSkewMs,
      kek: this.#kek,
    });
    const active = store.authorityInState('active');
    let activateAt = now;
    if (kind === 'scheduled' && active) {
      activateAt = Math.max(rotationPoints(active).activateAt, now + this.settings.bundlePropagationMs);
    } else if (kind === 'forced') {
      activateAt = now + this.settings.bundlePropagationMs;
    }
    const sequence = store.transaction(() => {
      const live = store.liveAuthorities();
      if (live.some((a) => a.slot === slot) || live.some((a) => a.state === 'prepared')) return null;
      if (kind === 'initial' && live.length > 0) return null;
      const seq = store.bumpBundleSequence(now);
      store.insertAuthority({
        generation,
        slot,
        state: kind === 'initial' ? 'active' : 'prepared',
        certificate: new Uint8Array(made.ca.certificate.rawData),
        wrappedKey: made.wrappedKey,
        notBefore: made.notBefore,
        notAfter: made.notAfter,
        createdAt: now,
        publishedSequence: seq,
        activateAt: kind === 'initial' ? null : activateAt,
        forced: kind === 'forced' || kind === 'forced-immediate',
        activatedAt: kind === 'initial' ? now : null,
        retiringAt: null,
        retiredAt: null,
      });
      return seq;
    });
    if (sequence === null) return false;
    this.#cas.set(generation, Promise.resolve(made.ca));
    if (kind === 'initial') {
      this.#emit(events, {
        type: 'ca.initialized',
        generation,
        slot,
        notAfter: made.notAfter,
        bundleSequence: sequence,
      });
    } else {
      this.#emit(events, {
        type: 'ca.prepared',
        generation,
        slot,
        notAfter: made.notAfter,
        bundleSequence: sequence,
        activateAt,
        forced: kind === 'forced' || kind === 'forced-immediate',
      });
    }
    return true;
  }

  rotateNow(options: { now?: number; immediate?: boolean } = {}): Promise<RotationResult> {
    return this.#serialized(async () => {
      const now = options.now ?? this.#clock();
      const store = this.#open();
      const live = store.liveAuthorities();
      const active = live.find((a) => a.state === 'active');
      let prepared = live.find((a) => a.state === 'prepared');
      if (prepared) {
        const deadline = options.immediate
          ? now
          : Math.max(now, prepared.createdAt + this.settings.bundlePropagationMs);
        store.forcePrepared(prepared.generation, Math.min(prepared.activateAt ?? deadline, deadline));
      } else {
        const slot: SlotName = active ? otherSlot(active.slot) : 'A';
        const blocking = live.find((a) => a.slot === slot);
        if (blocking) {
          throw caError(CA_ERRORS.rotationBlocked, {
            slot,
            generation: blocking.generation,
            until: store.lastLeafNotAfter(blocking.generation) ?? blocking.notAfter,
          });
        }
        await this.#create(now, slot, options.immediate ? 'forced-immediate' : 'forced', []);
      }
      prepared = store.authorityInState('prepared') ?? undefined;
      const target = prepared ?? store.authorityInState('active');
      if (!target) throw caError(CA_ERRORS.noActiveCa, { reason: 'rotation' });
      // Activate right away if nothing stands in the way (immediate, or no holder lacks the bundle).
      const events: CaEvent[] = [];
      for (let step = 0; step < 8; step++) {
        if (!(await this.#step(now, events))) break;
      }
      const after = store.authority(target.generation);
      return {
        generation: target.generation,
        slot: target.slot,
        publishedSequence: target.publishedSequence,
        activated: after?.state === 'active',
        activateBy: after?.activateAt ?? after?.activatedAt ?? now,
      };
    });
  }

  status(now?: number): CaStatus {
    const store = this.#open();
    const at = now ?? this.#clock();
    return computeStatus({
      trustDomain: this.trustDomain,
      now: at,
      settings: this.settings,
      bundleSequence: store.bundleSequence(),
      authorities: store.liveAuthorities().map((row) => ({
        row,
        sha256: fingerprint(row.certificate),
        lastLeafNotAfter: store.lastLeafNotAfter(row.generation),
        liveSvids: store.liveLeafCount(row.generation, at),
      })),
      holdersBehind: (sequence, publishedAt) => store.holdersBehind(sequence, publishedAt, at),
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#journal.flush();
    this.#cas.clear();
    void this.#issuer.close();
    this.#store.close();
  }
}
