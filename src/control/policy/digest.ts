import { createHash, randomBytes } from 'node:crypto';
import type { CallerRule } from '../../core/runtime.ts';

/**
 * The canonical form and digests of inbound rules, shared by the control plane (which serves them) and
 * the SDK (which checks what it is served and says what it holds). Node's crypto only, no manifest
 * loader, so the SDK can import it.
 */

/** Who may call one service: caller SPIFFE ID → rules (deny by default). */
export type CallerRules = Record<string, CallerRule[]>;

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Puts rules in one canonical form: methods and paths sorted and deduplicated, identical rules merged,
 * rules and callers sorted. The rules are alternatives (any match allows), so this changes no
 * decision; it makes equal policies equal byte for byte, so reordering a manifest is no new version.
 * A caller named twice has its rules merged.
 */
export function canonicalCallers(callers: Iterable<readonly [string, readonly CallerRule[]]>): CallerRules {
  const merged = new Map<string, CallerRule[]>();
  for (const [id, rules] of callers) merged.set(id, [...(merged.get(id) ?? []), ...rules]);
  const out: CallerRules = {};
  for (const id of [...merged.keys()].sort(byText)) {
    const rules = new Map<string, CallerRule>();
    for (const rule of merged.get(id) ?? []) {
      const methods = [...new Set(rule.methods)].sort(byText);
      const paths = [...new Set(rule.paths)].sort(byText);
      rules.set(JSON.stringify([methods, paths]), { methods, paths });
    }
    out[id] = [...rules.keys()].sort(byText).map((key) => rules.get(key) as CallerRule);
  }
  return out;
}

/**
 * SHA-256 (hex) of one service's inbound rules in canonical form: equal exactly when the rules decide
 * alike, whatever their order. The control plane sends it with a service's policy; the service checks
 * it against the rules it received and sends back the digest of the rules it holds.
 */
export function callersDigest(callers: Readonly<Record<string, readonly CallerRule[]>>): string {
  const canonical = canonicalCallers(Object.entries(callers));
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

/** Shape of a {@link callersDigest} (and of the system digest): 64 lowercase hex digits. */
export const POLICY_DIGEST_PATTERN = /^[0-9a-f]{64}$/;

/** Shape of a {@link newPolicyEpoch}: 16 random bytes, base64url without padding. */
export const POLICY_EPOCH_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/**
 * A new policy epoch: 128 random bits naming one run of the control plane's policy history (see
 * policy-store.ts), so two runs never share one by chance.
 */
export function newPolicyEpoch(): string {
  return randomBytes(16).toString('base64url');
}
