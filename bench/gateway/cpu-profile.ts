/**
 * Reads a V8 `.cpuprofile` (what `node --cpu-prof` writes) and ranks where the time went: self time per
 * function, and self time per origin (a dependency, a Rampart source file, Node's internals, the garbage
 * collector). Self time is the time a function was on top of the stack: where cycles are burnt.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  name: string;
  /** Microseconds of self time. */
  selfUs: number;
  /** Share of all sampled time, idle included. */
  share: number;
}

export interface ProfileSummary {
  /** Sampled time in microseconds (idle included). */
  totalUs: number;
  /** Share of time the thread was idle (waiting in epoll): what is left over for more load. */
  idleShare: number;
  /** Self time by function. */
  functions: HotSpot[];
  /** Self time by the origin of the function itself (Node's internals show as `node:internal/...`). */
  origins: HotSpot[];
  /**
   * Self time charged to the nearest frame on the stack that is Rampart's or a dependency's, as
   * `origin function`: Node's internals are charged to whoever called them (WebCrypto to jose, stream
   * plumbing to the proxy stage). Frames with no such caller keep their own name (GC, idle, parser).
   */
  callers: HotSpot[];
}

/** Summarizes one profile; `root` makes Rampart's file names relative. */
export function summarizeProfile(file: string, root: string): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const selfByNode = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = Math.max(0, profile.timeDeltas[i] ?? 0);
    total += delta;
    selfByNode.set(profile.samples[i]!, (selfByNode.get(profile.samples[i]!) ?? 0) + delta);
  }
  const byFunction = new Map<string, number>();
  const byOrigin = new Map<string, number>();
  const byCaller = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of selfByNode) {
    const frame = nodes.get(id)!.callFrame;
    if (frame.functionName === '(idle)') idle += us;
    const where = frame.url ? `${shortUrl(frame.url, root)}:${frame.lineNumber + 1}` : '';
    const name = `${frame.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    const origin = originOf(frame, root);
    byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + us);
    let caller =
      frame.url.startsWith('node:') || frame.url === '' ? null : `${origin} ${frame.functionName || '(anonymous)'}`;
    for (let up = parents.get(id); caller === null && up !== undefined; up = parents.get(up)) {
      const f = nodes.get(up)!.callFrame;
      if (f.url !== '' && !f.url.startsWith('node:'))
        caller = `${originOf(f, root)} ${f.functionName || '(anonymous)'}`;
    }
    caller ??= frame.url ? origin : frame.functionName || '(native)';
    byCaller.set(caller, (byCaller.get(caller) ?? 0) + us);
  }
  const rank = (map: Map<string, number>): HotSpot[] =>
    [...map].map(([name, selfUs]) => ({ name, selfUs, share: selfUs / total })).sort((a, b) => b.selfUs - a.selfUs);
  return {
    totalUs: total,
    idleShare: idle / total,
    functions: rank(byFunction),
    origins: rank(byOrigin),
    callers: rank(byCaller),
  };
}

function shortUrl(url: string, root: string): string {
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) return path.slice(modules + '/node_modules/'.length);
  return path.startsWith('/') ? relative(root, path) : path;
}

/** Which dependency, Rampart file, or runtime part a frame belongs to. */
function originOf(frame: ProfileNode['callFrame'], root: string): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/').slice(0, 2).join('/')}`;
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = path.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  return path.startsWith('/') ? relative(root, path) : path;
}
