import { relative } from 'node:path';
import { styleText } from 'node:util';
import type { ConfigIssue } from './model.ts';

export interface FormatOptions {
  /** ANSI colors (for a terminal). */
  color: boolean;
  /** Directory file names are shown relative to. Default: the process's working directory. */
  cwd?: string;
}

/**
 * One issue per line, `file:line:column  path  message  [code]`, each followed by an indented
 * `hint:` line when there is one. File names are relative to `cwd`. Never a stack trace.
 */
export function formatIssues(issues: readonly ConfigIssue[], options: FormatOptions): string {
  const cwd = options.cwd ?? process.cwd();
  const style = (format: Parameters<typeof styleText>[0], text: string) =>
    options.color ? styleText(format, text, { validateStream: false }) : text;
  const lines: string[] = [];
  for (const issue of issues) {
    const file = relative(cwd, issue.file) || issue.file;
    const parts = [style('cyan', `${file}:${issue.line}:${issue.column}`)];
    if (issue.path !== '') parts.push(style('bold', issue.path));
    parts.push(`${style('red', issue.message)}  ${style('dim', `[${issue.code}]`)}`);
    lines.push(parts.join('  '));
    if (issue.hint) lines.push(`    ${style('dim', 'hint:')} ${issue.hint}`);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
