/**
 * Certificate authority settings, in one place, each with the reason for its value. Every one can be
 * overridden through {@link CertificateAuthorityOptions} (src/control/ca/authority.ts); the factory
 * validates the combination once.
 */
export const CA_DEFAULTS = {
  /**
   * Lifetime of a signing CA (each A/B slot's self-signed root). SPIRE's `ca_ttl` default is 24 h:
   * short enough that rotation runs every day and stays exercised (a root that expires once a decade is
   * the classic mesh-wide outage: istio#14516, linkerd2#4808), long enough for ⅙ of it (4 h) to cover
   * the last SVIDs the old CA signs.
   */
  caLifetimeMs: 24 * 60 * 60_000,
  /** X509-SVID lifetime: SPIRE's `default_x509_svid_ttl` (1 h); DESIGN.md "Workload identity". */
  svidTtlMs: 60 * 60_000,
  /**
   * Edge certificate lifetime (the gateway's `tls: auto`). 4 h is ⅙ of the CA lifetime: the longest
   * that fits between a CA's activation of its successor and its expiry (the same rule as SVIDs), so
   * rotation never cuts one short. Renewed at ½ (2 h): the control plane may be away that long before
   * clients see an expired certificate. Short, because the key lives in the gateway, the process that
   * faces the network; and nothing revokes it.
   */
  edgeCertificateTtlMs: 4 * 60 * 60_000,
  /** Join-token lifetime: SPIRE's join token default (600 s); issue 4 "TTL 10 min". */
  joinTokenTtlMs: 600_000,
  /** Longest join token the CA mints: a join token is a bearer credential for a first SVID. */
  maxJoinTokenTtlMs: 24 * 60 * 60_000,
  /**
   * Certificates start this long in the past, so a peer whose clock is behind ours does not see a
   * not-yet-valid certificate; the same 60 s as the access-token skew (DESIGN.md "Edge tokens").
   */
  clockSkewMs: 60_000,
  /** SPIRE's rotation points: prepare the next CA at ½ of the active CA's lifetime… */
  prepareAtFraction: 1 / 2,
  /** …and activate it when ⅙ of the active CA's lifetime is left. */
  activateAtRemainingFraction: 1 / 6,
  /**
   * A newly published CA signs nothing for at least this long, so every peer can fetch the bundle
   * that trusts it first (a forced rotation may end sooner once every live SVID holder acknowledged the
   * new bundle). Five bundle refresh intervals.
   */
  bundlePropagationMs: 5 * 60_000,
  /** How often peers should re-fetch the bundle (`spiffe_refresh_hint` of the SPIFFE bundle). */
  bundleRefreshHintMs: 60_000,
  /**
   * Warn when the active CA expires within this long. Two SVID lifetimes: after that, new SVIDs are cut
   * short and an outage is one missed rotation away. Computed from `svidTtlMs` when not set.
   */
  anchorWarningSvidTtls: 2,
  /**
   * Used or expired join tokens are kept this long past their expiry, so a replay is reported as a
   * replay (CA_ERR_TOKEN_REUSED), not as an unknown token.
   */
  joinTokenRetentionMs: 24 * 60 * 60_000,
  /** Largest CSR accepted (PEM or DER), before any parsing: an RSA-8192 CSR is ~3 KB. */
  maxCsrBytes: 16 * 1024,
  /** Shortest SVID TTL accepted (issue 4's load test runs with 10 s). */
  minSvidTtlMs: 1_000,
  /**
   * Threads that verify CSRs and sign leaves. `auto`: one per core but one, up to 4, where worker
   * threads are permitted (Node's permission model needs `--allow-worker`) and there are 3 cores or
   * more, else none (this thread signs: on 2 cores it is the fastest, leaf-issuer.ts). Issue 4
   * asks for ≥ 500 SVIDs/s; measured figures per thread are in bench/README.md (`ca-issuance.bench.ts`).
   */
  signingThreads: 'auto',
} as const;

/** Public-key types a CSR may carry (issue 4: weak keys refused). */
export const CSR_KEY_POLICY = {
  /** EC curves, as Node names them (prime256v1 = P-256, secp384r1 = P-384). */
  curves: ['prime256v1', 'secp384r1'],
  /** RSA modulus bounds: NIST SP 800-131A disallows < 2048; > 8192 only costs the CA time. */
  minRsaBits: 2048,
  maxRsaBits: 8192,
} as const;
