import { createServer, type IncomingMessage, type Server } from 'node:http';
import { isIPv6 } from 'node:net';
import { newErrorId } from '../core/errors.ts';
import {
  applyServerLimits,
  guardListener,
  type ListenerGuardSettings,
  type ListenOptions,
  listenerDecision,
  listenOn,
  serverOptions,
} from './listener.ts';

/**
 * `Host` as a redirect may use it: DNS labels or an IPv4 address, or an IPv6 literal, and an optional
 * port (ignored: the redirect names the HTTPS port). Applied to the lower-cased value. No userinfo,
 * no path, no trailing dot, no escapes: anything else is refused rather than "cleaned".
 */
const HOST =
  /^(?:([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*)|\[([0-9a-f:.]{2,45})\])(?::[0-9]{1,5})?$/;

/**
 * A request target that can be appended to `https://<authority>` as it is: origin-form, visible ASCII
 * only, no backslash, and not starting with `//` (harmless after an authority, but never worth
 * carrying). Anything else redirects to `/`.
 */
const SAFE_TARGET = /^\/(?!\/)[\x21-\x5b\x5d-\x7e]*$/;

export interface RedirectOptions extends ListenerGuardSettings {
  /**
   * Whether a host name (lower case, no port; IPv6 without brackets) may be redirected to: the
   * configured listen host, or a name the edge certificate covers. Never a name merely because a
   * client sent it (open redirect).
   */
  allowHost: (name: string) => boolean;
  /** The HTTPS port to send clients to. */
  httpsPort: () => number;
}

export interface RedirectListener {
  readonly server: Server;
  listen(host: string, port: number, options?: ListenOptions): Promise<number>;
  /** New limits and settings (reconfiguration). */
  update(settings: ListenerGuardSettings): void;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/**
 * The optional plain-HTTP listener (`gateway.redirectHttp`): it answers every request with 308 to the
 * same path on HTTPS and does nothing else — nothing is routed, proxied or read from the body, and
 * every connection closes after its one answer. The redirect host is the request's `Host` only when
 * that host is one the gateway serves (see `allowHost`); any other Host gets 400 and no `Location`.
 * No HSTS here: RFC 6797 §7.2 forbids it over plain HTTP (the HTTPS response sets it).
 */
export function createRedirectListener(options: RedirectOptions): RedirectListener {
  let settings: ListenerGuardSettings = options;
  const server = createServer(serverOptions(settings.limits), (req, res) => {
    const location = redirectLocation(req, options, settings.limits.maxTargetLength);
    if (location === null) {
      const errorId = newErrorId();
      settings.metrics.denials.inc({ stage: 'redirect', reason: 'host' });
      settings.logger.info({ errorId, stage: 'redirect', clientIp: req.socket.remoteAddress }, 'redirect refused');
      settings.decisions?.emit(
        listenerDecision({
          stage: 'redirect',
          reason: 'host',
          code: 'GW_ERR_REDIRECT_HOST',
          status: 400,
          errorId,
          peer: req.socket.remoteAddress,
        }),
      );
      res.writeHead(400, { 'content-length': 0, connection: 'close', 'cache-control': 'no-store' });
      res.end();
      return;
    }
    res.writeHead(308, { location, 'content-length': 0, connection: 'close' });
    res.end();
  });
  applyServerLimits(server, settings.limits);
  const guard = guardListener(server, { ...options, stage: 'redirect' });

  return {
    server,
    listen: (host, port, listenOptions) => listenOn(server, host, port, listenOptions),
    update(next) {
      settings = next;
      applyServerLimits(server, next.limits);
      guard.update(next);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The `Location` for a request, or null when its Host is not one to redirect to. */
export function redirectLocation(
  req: Pick<IncomingMessage, 'headers' | 'rawHeaders' | 'url'>,
  options: Pick<RedirectOptions, 'allowHost' | 'httpsPort'>,
  maxTargetLength: number,
): string | null {
  const host = req.headers.host;
  if (typeof host !== 'string') return null;
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') hosts++;
  if (hosts !== 1) return null; // Node keeps the first of duplicates; which one a client meant is unknowable
  const match = HOST.exec(host.toLowerCase());
  if (!match) return null;
  const ipv6 = match[2];
  if (ipv6 !== undefined && !isIPv6(ipv6)) return null;
  const name = ipv6 ?? match[1]!;
  if (!options.allowHost(name)) return null;
  const port = options.httpsPort();
  const authority = `${ipv6 !== undefined ? `[${name}]` : name}${port === 443 ? '' : `:${port}`}`;
  const target = req.url ?? '/';
  const path = target.length <= maxTargetLength && SAFE_TARGET.test(target) ? target : '/';
  return `https://${authority}${path}`;
}
