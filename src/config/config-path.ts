/** A location inside the manifest's data: map keys and list indexes from the root. */
export type ConfigPath = readonly (string | number)[];

const PLAIN_KEY = /^[A-Za-z0-9_$][A-Za-z0-9_$:-]*$/;

/**
 * The dotted form people read: `services.orders.routes[1].rateLimit`. Keys that would be ambiguous
 * there (dots, brackets, spaces, empty) are written as `["a.b"]`, URL passwords hidden.
 */
export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (PLAIN_KEY.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${redactUrlPasswords(JSON.stringify(part))}]`;
  }
  return out;
}

/**
 * Converts an Ajv `instancePath` (a JSON Pointer, RFC 6901) to a path, using the data to tell list
 * indexes from map keys that look like numbers.
 */
export function pointerToPath(pointer: string, data: unknown): ConfigPath {
  if (pointer === '') return [];
  const out: (string | number)[] = [];
  let node = data;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(node)) {
      const index = Number(key);
      out.push(index);
      node = node[index];
    } else {
      out.push(key);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
    }
  }
  return out;
}

/**
 * `scheme://user:password@` with the password replaced by `***`. Up to the last `@` of the first word
 * (on the same line) that holds one, so a password holding an unescaped `@`, `/` or space (URL parsers
 * accept a space there) is hidden whole; a word that only looks like userinfo loses a little more than
 * its password, which is the safe direction.
 */
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^\s@/:]*):(?:\S*[ \t]+)*?\S*@/gi;

/**
 * Text with the passwords of URLs in it hidden: a store's URL may carry one, and messages end up in
 * terminals, logs and CI output (STYLE.md: credentials never reach a log).
 */
export function redactUrlPasswords(text: string): string {
  return text.replace(URL_PASSWORD, '$1:***@');
}

/**
 * A user-supplied value as it may appear in a message: JSON-quoted (so control characters and terminal
 * escapes print as `\u001b`, never raw), URL passwords hidden, and cut to a readable length.
 */
export function show(value: unknown): string {
  let text: string;
  if (typeof value === 'string') text = JSON.stringify(value);
  else if (value === undefined) text = 'nothing';
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  text = redactUrlPasswords(text);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A key or allowed word in backticks, with control characters escaped and URL passwords hidden. */
export function code(word: string | number): string {
  const text = String(word);
  const safe = redactUrlPasswords(JSON.stringify(text).slice(1, -1));
  return `\`${safe.length > 80 ? `${safe.slice(0, 77)}...` : safe}\``;
}
