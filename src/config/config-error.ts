import { RampartError } from '../core/errors.ts';
import type { ConfigIssue } from './model.ts';

/**
 * A manifest that cannot be used, with every issue found in it (sorted by position). `code` is always
 * `CFG_ERR_INVALID`; each issue has its own stable code. Print it with `formatIssues`.
 */
export class ConfigError extends RampartError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const first = issues[0];
    const where = first ? ` (first: ${first.file}:${first.line}:${first.column} ${first.path} ${first.message})` : '';
    super('CFG_ERR_INVALID', `invalid manifest: ${issues.length} issue${issues.length === 1 ? '' : 's'}${where}`, {
      detail: { issues: issues.length },
    });
    this.name = 'ConfigError';
    this.issues = Object.freeze([...issues]);
  }
}

/** Orders issues by position in the file, then by path and code, so output is stable. */
export function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort(
    (a, b) =>
      a.file.localeCompare(b.file) ||
      a.line - b.line ||
      a.column - b.column ||
      a.path.localeCompare(b.path) ||
      a.code.localeCompare(b.code),
  );
}
