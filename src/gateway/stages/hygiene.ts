import { canonicalizeTarget } from '../../core/canonical-path.ts';
import { RampartError } from '../../core/errors.ts';
import { GATEWAY_LIMITS } from '../defaults.ts';
import { deny } from '../deny.ts';
import type { Stage } from '../stage.ts';

/** Headers that must appear at most once (RFC 9110 §5.3 forbids combining these; smuggling uses duplicates). */
const SINGLETON_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'authorization']);

/**
 * Request hygiene: refuse anything an upstream could read differently from the gateway. Node's strict
 * parser already refuses obs-fold, bare CR and malformed chunking; this stage adds what it lets through:
 * duplicate Host (Node keeps the first), absolute-form and asterisk-form targets, Content-Length together
 * with Transfer-Encoding, transfer codings other than chunked, oversized targets and bodies, and
 * non-canonical paths (core/canonical-path.ts).
 */
export function createHygiene(): Stage {
  return {
    name: 'hygiene',
    request: (ctx) => {
      const { req } = ctx;
      const target = req.url ?? '';
      if (target.length > GATEWAY_LIMITS.maxTargetLength) {
        throw deny(414, 'GW_ERR_TARGET_TOO_LONG', { reason: 'target_too_long' });
      }
      if (target.charCodeAt(0) !== 0x2f) throw deny(400, 'GW_ERR_TARGET_FORM', { reason: 'target_form' });

      const raw = req.rawHeaders;
      let seen = 0;
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!.toLowerCase();
        if (SINGLETON_HEADERS.has(name)) {
          const bit = name === 'host' ? 1 : name === 'content-length' ? 2 : name === 'transfer-encoding' ? 4 : 8;
          if (seen & bit) throw deny(400, 'GW_ERR_DUPLICATE_HEADER', { reason: `duplicate_${name.replace('-', '_')}` });
          seen |= bit;
        }
      }
      const te = req.headers['transfer-encoding'];
      if (te !== undefined) {
        // RFC 9112 §6.1: a sender must not send Content-Length with Transfer-Encoding; treat it as smuggling.
        if (seen & 2) throw deny(400, 'GW_ERR_AMBIGUOUS_FRAMING', { reason: 'cl_and_te' });
        if (te.trim().toLowerCase() !== 'chunked') throw deny(400, 'GW_ERR_AMBIGUOUS_FRAMING', { reason: 'te_coding' });
      }
      const length = req.headers['content-length'];
      if (length !== undefined && Number(length) > GATEWAY_LIMITS.maxBodyBytes) {
        throw deny(413, 'GW_ERR_BODY_TOO_LARGE', { reason: 'body_too_large' });
      }
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
