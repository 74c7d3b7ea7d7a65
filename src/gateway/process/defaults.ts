/**
 * Settings of the gateway process (main thread and workers), in one place, each with its reason.
 */
export const GATEWAY_PROCESS_DEFAULTS = Object.freeze({
  /**
   * Time in-flight requests get to finish on shutdown. The launcher sends SIGKILL 10 s after SIGTERM
   * (LAUNCHER_DEFAULTS.stopGraceMs): 7 s of draining leaves time to close pools, hand over the last
   * decision events, spool them and give delivery its last moment (AUDIT_CLIENT_DEFAULTS.closeDeliveryMs, 2 s).
   */
  drainGraceMs: 7_000,
  /** A worker that has not exited this long after its drain deadline is terminated. */
  drainExtraMs: 1_500,
  /** A worker that does not answer a metrics scrape within 2 s is left out of that scrape (Prometheus' default scrape timeout is 10 s). */
  metricsTimeoutMs: 2_000,
  /** Building a new pipeline takes milliseconds; 10 s without an answer means the worker is stuck. */
  reconfigureTimeoutMs: 10_000,
  /**
   * Changes within 200 ms are one reload: an editor's save is often a truncate and a write, or a write
   * to a temporary file and a rename, and validating a half-written file would report false issues.
   */
  reloadDebounceMs: 200,
  /** While the manifest path is missing (between an unlink and a rename), look for it again this often. */
  rewatchMs: 500,
});

/**
 * V8 heap sizing for the gateway process, passed by the launcher as Node options (src/launcher/command.ts;
 * V8's flags are per process, so every isolate of the gateway gets them). Issue 3 asks for RSS ≤ 150 MB
 * with 1,000 keep-alive connections. What a one-worker gateway holds live with 1,000 connections open
 * is small (25-37 MB of heap after a full GC); with V8's defaults the heap grows to several times that
 * before it collects. Measured with bench/gateway.ts, 1,000 connections (bench/README.md, 2026-12-06).
 */
export const GATEWAY_HEAP_DEFAULTS = Object.freeze({
  /**
   * Semi-space of the young generation, MB (two of them make the young generation). V8 grows it under
   * allocation up to its default maximum (the young generation of one worker reached 76 MB under
   * 1,000 connections), though a request's garbage dies young at any size. 4 MB: together with the
   * next setting, the one-worker gateway's RSS under 1,000 connections fell by 17-60 MB; 8 MB left
   * it 20 MB higher when paced; 2 MB gave mixed results (paced lower, full speed higher) for twice
   * the scavenges per request. The price is CPU per request, by an amount a shared two-core machine
   * could not pin down (+3 %, +31 %, +36 % for both settings in three interleaved runs): raise these
   * for throughput when memory is plenty.
   */
  maxSemiSpaceMb: 4,
  /**
   * After a full GC the old generation may grow this much (percent of what survived) before the next
   * one, instead of V8's adaptive factor (up to 4×: 26 MB of old space at start became 77 MB under
   * 1,000 connections, mostly garbage). 50 %: old space stayed near 1.5× its live size; 20 % saved
   * about 15 MB more but paid 3-9× the full-GC pauses per request.
   */
  heapGrowingPercent: 50,
});
