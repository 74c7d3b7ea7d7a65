import type { HttpMethod, Manifest, Route } from '../config/model.ts';
import { type CompiledPattern, compareSpecificity, compilePattern, matchPattern } from '../core/path-pattern.ts';

export interface CompiledRoute {
  readonly route: Route;
  readonly pattern: CompiledPattern;
}

export type RouteMatch =
  | { kind: 'match'; route: CompiledRoute }
  /** The path is routed but not for this method: 405 with `Allow`. */
  | { kind: 'method'; allow: readonly HttpMethod[] }
  | { kind: 'none' };

/** The routes that share one pattern, by method. */
interface PatternGroup {
  readonly pattern: CompiledPattern;
  readonly byMethod: ReadonlyMap<string, CompiledRoute>;
  readonly allow: readonly HttpMethod[];
}

/**
 * Matches canonical paths to manifest routes. The most specific pattern that matches the path owns it:
 * if none of its routes allows the method the answer is 405, and the request never falls through to a
 * looser pattern (so `GET /admin/x` cannot slip past a POST-only `/admin/**` into a public `/**`).
 * Built once per manifest; `match` allocates nothing.
 */
export class Router {
  readonly #groups: PatternGroup[];

  constructor(manifest: Manifest) {
    const bySource = new Map<string, { pattern: CompiledPattern; routes: CompiledRoute[] }>();
    for (const route of manifest.routes) {
      const group = bySource.get(route.path.source) ?? { pattern: compilePattern(route.path.source), routes: [] };
      group.routes.push({ route, pattern: group.pattern });
      bySource.set(route.path.source, group);
    }
    this.#groups = [...bySource.values()]
      .sort((a, b) => compareSpecificity(a.pattern, b.pattern))
      .map(({ pattern, routes }) => {
        const byMethod = new Map<string, CompiledRoute>();
        for (const compiled of routes) for (const method of compiled.route.methods) byMethod.set(method, compiled);
        // HEAD is served wherever GET is (RFC 9110 §9.3.2).
        const get = byMethod.get('GET');
        if (get && !byMethod.has('HEAD')) byMethod.set('HEAD', get);
        return { pattern, byMethod, allow: [...byMethod.keys()] as HttpMethod[] };
      });
  }

  match(method: string, path: string): RouteMatch {
    for (const group of this.#groups) {
      if (!matchPattern(group.pattern, path)) continue;
      const route = group.byMethod.get(method);
      return route ? { kind: 'match', route } : { kind: 'method', allow: group.allow };
    }
    return { kind: 'none' };
  }
}
