import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import type { GatewayLimits } from '../../config/model.ts';
import { canonicalizeTarget } from '../../core/canonical-path.ts';
import { RampartError } from '../../core/errors.ts';
import { deny } from '../deny.ts';
import type { Stage } from '../stage.ts';

/** Headers that must appear at most once (RFC 9110 §5.3 forbids combining these; smuggling uses duplicates). */
const SINGLETON_HEADERS: ReadonlyMap<string, number> = new Map([
  ['host', 1],
  ['content-length', 2],
  ['transfer-encoding', 4],
  ['authorization', 8],
]);
const HAS_CONTENT_LENGTH = 2;

/**
 * RFC 9112 §3.2 `Host = uri-host [ ":" port ]`, narrowed to what names a server: DNS labels (underscores
 * allowed: internal names use them) or an IPv4 address, or an IPv6 literal. reg-name's sub-delims and escapes (`a;b`, `a%2f`) name no host anyone
 * serves and are how Host-based confusion starts, so they are refused with the rest (RFC 9112 §3.2:
 * "a Host header field with an invalid field value" is a 400).
 */
const HOST =
  /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/**
 * Header names the gateway or an upstream gives meaning to (framing, routing, identity, forwarding).
 * The same names spelled with `_` for `-` are refused: CGI-style servers (WSGI, PHP, Rack) map both
 * spellings to one variable (`HTTP_X_FORWARDED_FOR`), so `X_Forwarded_For` would pass the gateway as
 * an unknown field and arrive as the forwarding header the gateway is meant to own.
 */
const CONFUSABLE = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'authorization',
  'proxy-authorization',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
  'x-request-id',
  'traceparent',
  'tracestate',
]);

/** The only message framing the gateway accepts besides Content-Length (RFC 9112 §6.1, §7.1). */
const CHUNKED = 'chunked';

/** Deny reason for a duplicated singleton header: a fixed string per header, never built from input. */
const DUPLICATE_REASON: Readonly<Record<string, string>> = {
  host: 'duplicate_host',
  'content-length': 'duplicate_content_length',
  'transfer-encoding': 'duplicate_transfer_encoding',
  authorization: 'duplicate_authorization',
};

/**
 * Request hygiene: refuse anything an upstream could read differently from the gateway. Node's strict
 * parser (never `insecureHTTPParser`) already refuses obs-fold, bare CR and LF, NUL and other controls
 * in fields, Content-Length that is not digits or is duplicated, Content-Length with Transfer-Encoding,
 * Transfer-Encoding whose last coding is not chunked, malformed chunks and oversized chunk extensions;
 * those never reach this stage (listener.ts answers them). This stage adds what Node lets through:
 * - HTTP versions other than 1.0 and 1.1 (Node parses `HTTP/2.0` and `HTTP/0.9` request lines);
 * - request targets longer than `maxTargetLength` (414) or not in origin-form (absolute- and
 *   asterisk-form: RFC 9112 §3.2.2 lets the two name different hosts);
 * - more header lines than `maxHeadersCount` (431; Node already refuses, this is the second lock);
 * - a duplicated Host, Content-Length, Transfer-Encoding or Authorization (Node keeps one silently);
 * - a missing Host on HTTP/1.1, an empty or malformed Host, and header names that read as a framing, identity or forwarding
 *   header once `_` becomes `-` (see CONFUSABLE);
 * - any Transfer-Encoding but exactly `chunked` (`identity, chunked` passes Node), Transfer-Encoding on
 *   HTTP/1.0 (RFC 9112 §6.1: such a message was likely forwarded by something that did not de-chunk);
 * - a declared body over `maxBodyBytes` (413; streamed bodies are counted by {@link limitBody});
 * - non-canonical paths (core/canonical-path.ts).
 * It also deletes inbound `x-rampart-*` fields (only the gateway speaks for Rampart; the proxy drops
 * them too) and `Expect` (the gateway answers `100-continue` itself once the request is admitted).
 */
export function createHygiene(deps: { manifest: { gateway: { limits: GatewayLimits } } }): Stage {
  const { maxTargetLength, maxHeadersCount, maxBodyBytes } = deps.manifest.gateway.limits;
  return {
    name: 'hygiene',
    request: (ctx) => {
      const { req } = ctx;
      const version = req.httpVersion;
      if (version !== '1.1' && version !== '1.0') throw deny(400, 'GW_ERR_HTTP_VERSION', { reason: 'http_version' });

      const target = req.url ?? '';
      if (target.length > maxTargetLength) throw deny(414, 'GW_ERR_TARGET_TOO_LONG', { reason: 'target_too_long' });
      if (target.charCodeAt(0) !== 0x2f) throw deny(400, 'GW_ERR_TARGET_FORM', { reason: 'target_form' });

      const raw = req.rawHeaders;
      if (raw.length / 2 > maxHeadersCount) throw deny(431, 'GW_ERR_TOO_MANY_HEADERS', { reason: 'header_count' });
      let seen = 0;
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!.toLowerCase();
        const bit = SINGLETON_HEADERS.get(name);
        if (bit !== undefined) {
          if (seen & bit) throw deny(400, 'GW_ERR_DUPLICATE_HEADER', { reason: DUPLICATE_REASON[name]! });
          seen |= bit;
        } else if (name.startsWith('x-rampart-')) {
          delete req.headers[name];
        } else if (name.includes('_')) {
          const dashed = name.replaceAll('_', '-');
          if (CONFUSABLE.has(dashed) || dashed.startsWith('x-rampart-')) {
            throw deny(400, 'GW_ERR_HEADER_NAME', { reason: 'header_name_confusable' });
          }
        }
      }

      const host = req.headers.host;
      if (host === undefined) {
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400 (HTTP/1.0 had no Host).
        if (version === '1.1') throw deny(400, 'GW_ERR_HOST', { reason: 'host_missing' });
      } else if (!HOST.test(host)) {
        throw deny(400, 'GW_ERR_HOST', { reason: 'host_invalid' });
      }

      const te = req.headers['transfer-encoding'];
      if (te !== undefined) {
        // RFC 9112 §6.1: a sender must not send Content-Length with Transfer-Encoding; treat it as smuggling.
        if (seen & HAS_CONTENT_LENGTH) throw deny(400, 'GW_ERR_AMBIGUOUS_FRAMING', { reason: 'cl_and_te' });
        if (version === '1.0') throw deny(400, 'GW_ERR_AMBIGUOUS_FRAMING', { reason: 'te_http10' });
        if (te.trim().toLowerCase() !== CHUNKED) throw deny(400, 'GW_ERR_AMBIGUOUS_FRAMING', { reason: 'te_coding' });
      }
      const length = req.headers['content-length'];
      if (length !== undefined) {
        if (!/^[0-9]{1,16}$/.test(length)) throw deny(400, 'GW_ERR_AMBIGUOUS_FRAMING', { reason: 'cl_invalid' });
        if (Number(length) > maxBodyBytes) throw deny(413, 'GW_ERR_BODY_TOO_LARGE', { reason: 'body_too_large' });
      }
      delete req.headers.expect;

      try {
        const { path, query } = canonicalizeTarget(target);
        ctx.path = path;
        ctx.query = query;
      } catch (err) {
        const code = err instanceof RampartError ? err.code : 'PATH_ERR_UNKNOWN';
        throw deny(400, 'GW_ERR_PATH', { reason: code.toLowerCase() }, err);
      }
    },
  };
}

/**
 * The request body as a stream that fails with a 413 denial (`GW_ERR_BODY_TOO_LARGE`) as soon as more
 * than `maxBytes` have arrived: the bound for chunked bodies, whose size nobody declares up front (and a
 * second lock on Content-Length ones). The proxy sends this stream upstream instead of `req`; when it
 * fails, the upstream request is aborted (the service never sees a complete oversized body) and the
 * error reaches the proxy as the upstream call's rejection, a RampartError with status 413 to rethrow.
 *
 * The wrapper never destroys `req` itself: the client's socket must stay open long enough to receive
 * the 413, which the gateway sends with `Connection: close` because the rest of the body is unread.
 */
export function limitBody(req: IncomingMessage, maxBytes: number): Transform {
  let received = 0;
  const limited = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      received += chunk.length;
      if (received > maxBytes) {
        req.unpipe(limited);
        req.pause();
        callback(deny(413, 'GW_ERR_BODY_TOO_LARGE', { reason: 'body_too_large' }));
        return;
      }
      callback(null, chunk);
    },
  });
  // A client that disconnects mid-body must fail the upstream request too, not leave it waiting.
  const onClose = () => {
    if (!req.complete)
      limited.destroy(new RampartError('GW_ERR_CLIENT_ABORTED', 'client closed the request', { status: 400 }));
  };
  req.once('close', onClose);
  limited.once('close', () => req.off('close', onClose));
  // The reader (undici) listens for errors while it sends the body; once it stopped (the upstream
  // answered or the exchange was aborted) a late error must not become an uncaught exception.
  limited.on('error', () => {});
  req.pipe(limited);
  return limited;
}
