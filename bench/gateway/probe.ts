/**
 * One request before a line is measured, to prove the line measures what its label says: the upstream's
 * exact body comes back through it, and a secured line refuses a request without a token (a gateway
 * that skipped its checks would look fast for the wrong reason).
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface ProbeResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** GETs `url` once. `ca`: the PEM certificate an https URL must present. */
export function probe(url: string, headers: Record<string, string> = {}, ca?: string): Promise<ProbeResponse> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const options = { headers, timeout: 5_000, agent: false as const };
    const req =
      target.protocol === 'https:'
        ? httpsRequest(target, { ...options, ...(ca ? { ca } : {}), servername: 'localhost' })
        : httpRequest(target, options);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}
