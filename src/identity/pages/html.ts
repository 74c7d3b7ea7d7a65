/**
 * Server-rendered HTML for the provider's pages: one layout, escaping for every interpolated value,
 * no script anywhere. Styles come from one stylesheet served by the provider (`style-src 'self'`), so
 * the Content-Security-Policy needs neither `unsafe-inline` nor nonces.
 */

/** Path of the stylesheet, relative to the issuer. */
export const STYLESHEET_PATH = '/assets/rampart.css';

/** The stylesheet: small, no external fonts or images (`default-src 'none'` allows nothing else). */
export const STYLESHEET = `
:root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.5; }
body { margin: 0; display: flex; justify-content: center; padding: 2rem 1rem; }
main { width: 100%; max-width: 26rem; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
form { display: grid; gap: 0.75rem; margin: 1rem 0; }
label { font-weight: 600; }
input[type=text], input[type=password] { font: inherit; padding: 0.5rem; border: 1px solid #888; border-radius: 4px; }
button { font: inherit; padding: 0.6rem; border-radius: 4px; border: 1px solid #245; background: #1d4ed8; color: #fff; cursor: pointer; }
button.secondary { background: transparent; color: inherit; border-color: #888; }
button:focus-visible, input:focus-visible, a:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
.alert { border: 1px solid #b91c1c; padding: 0.5rem 0.75rem; border-radius: 4px; }
.qr svg { width: 14rem; height: 14rem; background: #fff; padding: 0.5rem; }
code, .codes { font-family: ui-monospace, monospace; }
.codes { columns: 2; list-style: none; padding: 0; }
`;

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

/** Marks a string as already-safe HTML (built by this module from escaped parts). */
export interface Html {
  readonly html: string;
}

export function raw(html: string): Html {
  return { html };
}

/**
 * Tagged template that escapes every interpolation unless it is {@link Html} (or an array of them),
 * so a page cannot forget to escape a value.
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((value, i) => {
    out += render(value) + strings[i + 1]!;
  });
  return { html: out };
}

function render(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return value.map(render).join('');
  if (typeof value === 'object' && 'html' in (value as object)) return (value as Html).html;
  return escapeHtml(value);
}

export interface PageOptions {
  title: string;
  body: Html;
  /** Path prefix of the issuer (for the stylesheet link), '' at the root. */
  base: string;
}

/** A complete document: language, viewport, one heading per page (the body's `h1`), no script. */
export function page(options: PageOptions): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${escapeHtml(options.title)} – Rampart</title>
<link rel="stylesheet" href="${escapeHtml(`${options.base}${STYLESHEET_PATH}`)}">
</head>
<body>
<main>
${options.body.html}
</main>
</body>
</html>
`;
}

/**
 * An error box with a stable machine-readable code (`data-error`), announced to screen readers
 * (`role="alert"`). Tests and scripts read the code, people read the text.
 */
export function alert(code: string, text: string): Html {
  return html`<p class="alert" role="alert" data-error="${code}">${text}</p>`;
}
