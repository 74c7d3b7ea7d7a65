import { type CompiledPattern, compilePattern, matchPattern } from '../core/path-pattern.ts';
import type { InboundPolicy } from '../core/runtime.ts';

/** A decision of the inbound policy. */
export interface PolicyDecision {
  allowed: boolean;
  /** `allowed`, `unknown_caller` (no rule names this SPIFFE ID) or `no_rule` (none matches method + path). */
  reason: 'allowed' | 'unknown_caller' | 'no_rule';
}

interface CompiledRule {
  methods: ReadonlySet<string>;
  paths: readonly CompiledPattern[];
}

/**
 * Compiles the manifest's inbound policy once (patterns parsed and validated at start, a throw on a
 * bad one): caller SPIFFE ID → methods + canonical path patterns, deny by default. `decide` takes the
 * CANONICAL path (core/canonical-path.ts, the function the gateway uses), so what is matched is what
 * the route handler sees (Istio CVE-2021-31920 class).
 */
export function compileCallerPolicy(
  policy: InboundPolicy,
): (caller: string, method: string, path: string) => PolicyDecision {
  const callers = new Map<string, CompiledRule[]>();
  for (const [caller, rules] of Object.entries(policy.callers)) {
    callers.set(
      caller,
      rules.map((rule) => ({ methods: new Set(rule.methods), paths: rule.paths.map(compilePattern) })),
    );
  }
  return (caller, method, path) => {
    const rules = callers.get(caller);
    if (!rules) return { allowed: false, reason: 'unknown_caller' };
    for (const rule of rules) {
      if (rule.methods.has(method) && rule.paths.some((pattern) => matchPattern(pattern, path))) {
        return { allowed: true, reason: 'allowed' };
      }
    }
    return { allowed: false, reason: 'no_rule' };
  };
}
