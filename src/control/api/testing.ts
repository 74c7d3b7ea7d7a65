import { request } from 'node:https';
import { createLogger, type Logger } from '../../core/logger.ts';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import { type ControlTarget, requestSvid } from './client.ts';
import type { ApiRoutes } from './request.ts';
import { type ApiRefusal, type ControlApi, createControlApi } from './server.ts';
import { createServerCertificate, type ServerCertificate } from './server-certificate.ts';
import { createWorkloadKey } from './workload-key.ts';

/**
 * Test support for the control plane API (route tests, the mTLS suites): an API in process over a real
 * test CA, listening on loopback with its own server certificate, workload SVIDs, and a raw HTTPS
 * request. Not used at run time.
 */

/** The launcher credential of a test plane. */
export const TEST_LAUNCHER_CREDENTIAL = 'l'.repeat(43);

/** A client certificate and key (PEM), as `controlRequest` and `rawRequest` take them. */
export interface TestCredentials {
  cert: string;
  key: string;
}

/** What the routes of a test plane are made from. */
export interface TestPlaneContext {
  testCa: TestCa;
  logger: Logger;
  /** Reloads the API's TLS context (after a CA rotation). */
  refreshTls: () => void;
}

export interface TestControlPlaneOptions {
  /** The CA to serve; opened (with `ca`) and cleaned up by the plane when absent. */
  testCa?: TestCa;
  /** Options of the CA the plane opens. */
  ca?: Parameters<typeof openTestCa>[0];
  /** The modules' routes, served beside the CA's. */
  routes?: (context: TestPlaneContext) => ApiRoutes[];
  launcherCredential?: string;
}

/** A control plane API in process (see {@link startTestControlPlane}). */
export interface TestControlPlane {
  testCa: TestCa;
  api: ControlApi;
  /** The API's own server certificate. */
  cert: ServerCertificate;
  /** The API over loopback, trusted with the CA's bundle (as it was at start). */
  target: ControlTarget;
  /** Every refusal, in order (clear it with `refusals.length = 0`). */
  refusals: ApiRefusal[];
  logger: Logger;
  /** An SVID for `service` obtained as a workload does: a join token, then `POST /v1/svids`. */
  svid(service: string): Promise<TestCredentials>;
  /** Stops the API and the certificate's renewal; cleans up the CA when the plane opened it. */
  close(): Promise<void>;
}

/**
 * Starts a control plane API on 127.0.0.1 (any port) with a server certificate from the test CA, which
 * is renewed as in production, and `routes` beside the CA's.
 */
export async function startTestControlPlane(options: TestControlPlaneOptions = {}): Promise<TestControlPlane> {
  const owned = !options.testCa;
  const testCa = options.testCa ?? (await openTestCa(options.ca));
  const logger = createLogger({ name: 'control', level: 'silent' });
  const refusals: ApiRefusal[] = [];
  let api: ControlApi | null = null;
  const refreshTls = () => api?.refreshTls();
  const cert = await createServerCertificate({ ca: testCa.ca, logger, onRenewed: refreshTls });
  const started = createControlApi({
    ca: testCa.ca,
    launcherCredential: options.launcherCredential ?? TEST_LAUNCHER_CREDENTIAL,
    credentials: () => cert.current(),
    logger,
    onRefusal: (refusal) => refusals.push(refusal),
    routes: options.routes?.({ testCa, logger, refreshTls }) ?? [],
  });
  api = started;
  const port = await started.listen(0);
  const target: ControlTarget = {
    url: `https://127.0.0.1:${port}`,
    bundle: testCa.ca.bundle().pem,
    trustDomain: testCa.ca.trustDomain,
  };
  return {
    testCa,
    api: started,
    cert,
    target,
    refusals,
    logger,
    async svid(service) {
      const key = await createWorkloadKey();
      const res = await requestSvid(target, testCa.ca.mintJoinToken(service).token, key.csrPem);
      return { cert: res.certificate, key: key.keyPem };
    },
    async close() {
      cert.close();
      await started.close();
      if (owned) testCa.cleanup();
    },
  };
}

/** An SVID for `service` issued by `testCa` directly (no API in between). */
export async function issueTestSvid(testCa: TestCa, service: string): Promise<TestCredentials> {
  const key = await createWorkloadKey();
  const svid = await testCa.ca.issue({ csr: key.csrPem, serviceName: service });
  return { cert: svid.certificatePem, key: key.keyPem };
}

/** A raw request: what the typed clients would never send. */
export interface RawRequest {
  /** Default POST. */
  method?: string;
  path: string;
  body?: string | Buffer;
  /** Sent as given (no content type is added). */
  headers?: Record<string, string>;
  /** A client certificate to present; none by default. */
  credentials?: TestCredentials | null;
}

/** The status and the JSON body (`{}` when empty) of a raw request. */
export interface RawAnswer {
  status: number;
  body: Record<string, unknown>;
}

/**
 * `method path` with `body` (typed `application/json` unless `headers` say otherwise) and `headers`,
 * without a client certificate: see {@link rawRequest}.
 */
export function rawJsonRequest(
  target: ControlTarget,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<RawAnswer> {
  return rawRequest(target, {
    method,
    path,
    body,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
  });
}

/**
 * Sends `req` to the API of `target` over HTTPS on a fresh connection, trusting its bundle only. The
 * server's name is not checked: these requests test the server, not a client's check of it.
 */
export function rawRequest(target: ControlTarget, req: RawRequest): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const sent = request(new URL(req.path, target.url), {
      method: req.method ?? 'POST',
      headers: req.headers ?? {},
      ca: target.bundle,
      ...(req.credentials ?? {}),
      agent: false,
      checkServerIdentity: () => undefined,
    });
    sent.on('error', reject);
    sent.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} });
      });
    });
    sent.end(req.body);
  });
}
