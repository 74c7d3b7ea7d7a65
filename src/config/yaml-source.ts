import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type ParsedNode,
  parseDocument,
  type YAMLError,
} from 'yaml';
import type { ConfigPath } from './config-path.ts';
import { formatPath } from './config-path.ts';
import { ISSUE } from './issue-codes.ts';
import type { ConfigIssue, SourceLocation } from './model.ts';

/** The parsed manifest: its plain data, plus where in the file every value and key was written. */
export interface ManifestSource {
  /** Absolute path of the file. */
  readonly file: string;
  /** The document as plain data (maps become objects). */
  readonly data: unknown;
  /** Where the value at `path` starts; the nearest written ancestor when the value is absent. */
  at(path: ConfigPath): SourceLocation;
  /** Where the key of the map entry at `path` is written (the `name:`); falls back to {@link at}. */
  keyAt(path: ConfigPath): SourceLocation;
}

/**
 * Parses YAML 1.2 (so `off`, `no` and `on` stay strings) keeping positions. Duplicate keys, syntax
 * errors, unresolved tags and extra documents are issues: a manifest either parses cleanly or not at all.
 */
export function parseYaml(text: string, file: string): { source: ManifestSource; issues: ConfigIssue[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true, strict: true });
  const position = (offset: number): { line: number; column: number } => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  const locate = (path: ConfigPath, wantKey: boolean): SourceLocation => {
    const found = walk(doc, path);
    let offset = 0;
    if (found.complete && wantKey && found.key) offset = found.key.range?.[0] ?? 0;
    else if (found.complete && found.node && !isEmptyScalar(found.node)) offset = found.node.range?.[0] ?? 0;
    else if (found.key) offset = found.key.range?.[0] ?? 0;
    else if (found.node) offset = found.node.range?.[0] ?? 0;
    return { file, ...position(offset) };
  };

  const issues: ConfigIssue[] = [...doc.errors, ...doc.warnings].map((error) => yamlIssue(error, file, doc));
  let data: unknown = null;
  if (issues.length === 0) {
    try {
      // maxAliasCount bounds alias expansion ("billion laughs").
      data = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      issues.push({
        code: ISSUE.YAML,
        file,
        line: 1,
        column: 1,
        path: '',
        message: `YAML: ${(err as Error).message.split('\n')[0]}`,
      });
    }
  }
  return {
    source: {
      file,
      data,
      at: (path) => locate(path, false),
      keyAt: (path) => locate(path, true),
    },
    issues,
  };
}

function yamlIssue(error: YAMLError, file: string, doc: Document.Parsed): ConfigIssue {
  const [start] = error.linePos ?? [{ line: 1, col: 1 }];
  // With prettyErrors the message ends in " at line L, column C:" and a source excerpt; we print our own.
  const message = error.message.split(/ at line \d+, column \d+/)[0]!.split('\n')[0]!;
  const duplicate = error.code === 'DUPLICATE_KEY';
  return {
    code: duplicate ? ISSUE.DUPLICATE_KEY : ISSUE.YAML,
    file,
    line: start.line,
    column: start.col,
    path: formatPath(pathAtOffset(doc, error.pos[0])),
    message: duplicate ? 'this key appears twice in the same map' : `YAML: ${message}`,
    hint: duplicate
      ? 'YAML keeps only one of them; merge the two entries'
      : 'check indentation (spaces, not tabs), quotes and brackets around this position',
  };
}

interface Found {
  /** Whether every segment of the path was found. */
  complete: boolean;
  /** The deepest node reached. */
  node: Node | null;
  /** The key node of the deepest map entry reached, if the last step was a map entry. */
  key: Node | null;
}

function walk(doc: Document.Parsed, path: ConfigPath): Found {
  let node: Node | null = doc.contents;
  let key: Node | null = null;
  for (const segment of path) {
    if (node && isAlias(node)) node = (node.resolve(doc) as Node | undefined) ?? null;
    if (node && isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) return { complete: false, node, key };
      key = pair.key as Node;
      node = (pair.value as Node | null) ?? null;
    } else if (node && isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as Node | undefined;
      if (item === undefined) return { complete: false, node, key };
      node = item;
      key = null;
    } else {
      return { complete: false, node, key };
    }
  }
  return { complete: true, node, key };
}

function isEmptyScalar(node: Node): boolean {
  return isScalar(node) && node.value === null && (node as { source?: string }).source === '';
}

/** The path of the deepest key or value whose source range holds `offset` (for YAML errors). */
function pathAtOffset(doc: Document.Parsed, offset: number): ConfigPath {
  const path: (string | number)[] = [];
  const within = (node: unknown): node is ParsedNode => {
    const range = (node as ParsedNode | null)?.range;
    return range !== undefined && offset >= range[0] && offset < Math.max(range[2], range[0] + 1);
  };
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((p) => within(p.key) || within(p.value));
      if (!pair || !isScalar(pair.key)) break;
      path.push(String(pair.key.value));
      if (within(pair.key)) break;
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => within(item));
      if (index === -1) break;
      path.push(index);
      node = node.items[index];
    } else {
      break;
    }
  }
  return path;
}
