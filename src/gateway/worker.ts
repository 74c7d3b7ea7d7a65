import { BroadcastChannel, isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { deepFreeze } from '../config/freeze.ts';
import type { Manifest } from '../config/model.ts';
import { createLogger } from '../core/logger.ts';
import { Counter, Registry } from '../core/metrics.ts';
import {
  type EdgeCertificatePem,
  GATEWAY_EDGE_CERTIFICATE_CHANNEL,
  GATEWAY_SVID_CHANNEL,
  type WorkloadSvid,
} from '../core/runtime.ts';
import { createBatchingDecisionSink } from './decision-sink.ts';
import { createGateway } from './gateway.ts';
import { createGatewayMetrics } from './metrics.ts';
import type { FromWorker, ToWorker, WorkerData } from './process/messages.ts';
import { createRateLimitBackend } from './rate-limit/backend.ts';
import type { GatewayDeps } from './stage.ts';
import type { VerifierRegistry } from './stages/authenticate.ts';
import type { ProxyDeps } from './stages/proxy.ts';
import { createSpiffeConnect, createUpstreamTransports } from './upstream.ts';

/**
 * One gateway worker: it serves the public listener on the shared port (SO_REUSEPORT: the kernel
 * spreads connections over the workers) with everything a request touches kept here: the pipeline,
 * the upstream pools and breakers, the JWKS cache. What must hold for the gateway as a whole lives
 * elsewhere: rate limits in the shared table (shared memory, no message per request), decision events
 * and configuration with the supervisor (process/worker-pool.ts), reached only through `port`.
 *
 * It runs in a worker thread (this file is the thread's entry), or, for a one-worker gateway, in the
 * main thread itself over a MessageChannel (`WorkerPool` option `inThread`): the same code and
 * protocol, one V8 isolate fewer. `exit` ends it once it has drained and said so.
 */
export async function serveGatewayWorker(port: MessagePort, data: WorkerData, exit: () => void): Promise<void> {
  const post = (message: FromWorker) => port.postMessage(message);

  const logger = createLogger({ name: data.runtime.name, base: { worker: data.index } });
  // The access log's fields are fixed by the gateway (never headers or tokens): no redaction to pay for.
  const accessLog = createLogger({ name: data.runtime.name, base: { worker: data.index }, redact: false });
  // No process metrics here: they describe the whole process and come from the main thread's registry.
  const registry = new Registry();
  registry.setDefaultLabels({ component: 'gateway' });
  const metrics = createGatewayMetrics(registry);
  const served = new Counter({
    name: 'rampart_gateway_worker_requests_total',
    help: 'Requests received, by worker thread index (how evenly the kernel spreads connections).',
    labelNames: ['worker'],
    registers: [registry],
  });
  const workerLabel = { worker: String(data.index) };
  served.inc(workerLabel, 0);
  // A decision that cannot become an audit event (a bug, never request data: bad optional fields are
  // dropped, not the event) must not vanish without a trace.
  const unauditable = new Counter({
    name: 'rampart_gateway_decisions_unauditable_total',
    help: 'Denials that could not be turned into an audit event and were not recorded.',
    registers: [registry],
  });
  unauditable.inc(0);
  const decisions = createBatchingDecisionSink((lines, count) => post({ type: 'decisions', lines, count }), {
    onInvalid: () => {
      unauditable.inc();
      logger.error('gateway decision could not be turned into an audit event: not recorded');
    },
  });
  // Made once, kept across reloads: warm connection pools, breakers that remember, one rate-limit state.
  // With an SVID (a control plane exists), every upstream hop is mutual TLS to the service's SPIFFE ID;
  // renewals from the main thread arrive on a broadcast channel.
  const spiffe = data.runtime.workloadSvid ? createSpiffeConnect(data.runtime.workloadSvid) : null;
  let svidHeld = data.runtime.workloadSvid?.certificatePem;
  const installSvid = (next: WorkloadSvid) => {
    if (!spiffe || next.certificatePem === svidHeld) return;
    svidHeld = next.certificatePem;
    spiffe.update(next);
  };
  const svidChannel = spiffe ? new BroadcastChannel(GATEWAY_SVID_CHANNEL) : null;
  if (svidChannel) {
    svidChannel.onmessage = (event) => installSvid((event as { data: WorkloadSvid }).data);
    svidChannel.unref();
  }
  const upstream = createUpstreamTransports(
    data.runtime.upstreams,
    { logger, registry },
    spiffe ? { connect: spiffe.connect } : {},
  );
  const rateLimit = await createRateLimitBackend(data.manifest.gateway.rateLimit, {
    shared: data.rateLimitTable,
    logger,
    registry,
  });

  const verifiers: VerifierRegistry = new Map();

  function depsFor(manifest: Manifest): GatewayDeps & ProxyDeps {
    return {
      manifest: deepFreeze(manifest),
      upstreams: data.runtime.upstreams,
      logger,
      accessLog,
      registry,
      metrics,
      decisions,
      now: Date.now,
      rateLimit,
      upstream,
      verifiers,
    };
  }

  // `tls: auto`: the edge certificate from the main thread; renewals arrive on a broadcast channel
  // (one sent before the channel opened comes again in the `credentials` message once we listen).
  let edgeCertificate = data.runtime.edgeCertificate;
  const gateway = createGateway(depsFor(data.manifest), undefined, edgeCertificate ? { edgeCertificate } : {});
  const installEdge = (next: EdgeCertificatePem) => {
    if (next.certPem === edgeCertificate?.certPem) return;
    edgeCertificate = next;
    gateway.installCertificate(next.certPem, next.keyPem);
  };
  const edgeChannel = edgeCertificate ? new BroadcastChannel(GATEWAY_EDGE_CERTIFICATE_CHANNEL) : null;
  if (edgeChannel) {
    edgeChannel.onmessage = (event) => installEdge((event as { data: EdgeCertificatePem }).data);
    edgeChannel.unref();
  }
  gateway.server.on('request', () => served.inc(workerLabel));
  const { host, port: listenPort } = data.manifest.gateway.listen;
  let bound: number;
  try {
    bound = await gateway.listen(host, listenPort, { reusePort: data.reusePort });
  } catch (err) {
    // The public listener may be bound already (the redirect listener failed after it). A thread's
    // exit would release it; a worker in the main thread (in-thread) would keep serving, out of the
    // pool's reach (no reconfigure, no drain), and its restart would find the port taken.
    try {
      await gateway.close(0);
      svidChannel?.close();
      edgeChannel?.close();
      await upstream.close();
      await rateLimit.close?.();
    } catch (cleanup) {
      logger.error({ err: cleanup }, 'gateway worker could not clean up after a failed start');
    }
    throw err;
  }
  logger.info({ host, port: bound, generation: data.generation }, 'gateway worker listening');

  let queue: Promise<void> = Promise.resolve();
  let draining = false;

  port.on('message', (message: ToWorker) => {
    switch (message.type) {
      case 'credentials':
        if (message.workloadSvid) installSvid(message.workloadSvid);
        if (message.edgeCertificate && edgeChannel) installEdge(message.edgeCertificate);
        return;
      case 'metrics':
        void registry.getMetricsAsJSON().then((json) => post({ type: 'metrics', id: message.id, metrics: json }));
        return;
      case 'reconfigure':
        // One at a time, in the order sent: the last message is the configuration in force.
        queue = queue.then(async () => {
          if (draining) return;
          const { generation } = message;
          try {
            const { restartRequired } = gateway.reconfigure(depsFor(message.manifest));
            post({ type: 'reconfigured', generation, result: { error: null, restartRequired } });
          } catch (err) {
            logger.error({ err, generation }, 'gateway worker could not reconfigure');
            const error = String((err as { cause?: unknown }).cause ?? err);
            post({ type: 'reconfigured', generation, result: { error, restartRequired: [] } });
          }
        });
        return;
      case 'drain':
        if (draining) return;
        draining = true;
        queue = queue.then(() => drain(message.graceMs));
        return;
    }
  });
  post({ type: 'listening', port: bound });

  async function drain(graceMs: number): Promise<void> {
    try {
      await gateway.close(graceMs);
      svidChannel?.close();
      edgeChannel?.close();
      await upstream.close();
      await rateLimit.close?.();
    } catch (err) {
      logger.error({ err }, 'gateway worker drain failed');
    }
    decisions.flush();
    post({ type: 'drained' });
    // Messages already posted are still delivered after this.
    exit();
  }
}

// As a thread's entry: serve until drained, then end this thread (not the process).
if (!isMainThread && parentPort) {
  await serveGatewayWorker(parentPort, workerData as WorkerData, () => process.exit(0));
}
