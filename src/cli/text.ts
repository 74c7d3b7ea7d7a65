/**
 * What the CLI prints of text it did not write (error messages, names from a store or a server):
 * control characters escaped, so nothing can move the cursor, clear the screen or forge a line.
 */
export function clean(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The first line of an error's message, cleaned. */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return clean(text.split('\n')[0] ?? '');
}

/** Rows under a header in left-aligned columns two spaces apart, each line given to `out`. */
export function table(out: (line: string) => void, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const row of [header, ...rows]) {
    out(
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    );
  }
}

/** A time as RFC 3339 UTC to the second, or `?` for one that is no date. */
export function iso(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? '?' : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
