/**
 * Test support for the grants' reload (served.test.ts, control/manifest-reloads.test.ts): a manifest
 * that `loadManifest` accepts, whose services read the secrets given. Not used at run time.
 */

/**
 * The YAML of a manifest in which each service of `grants` reads the secrets listed for it (every
 * listed secret is declared, none is declared unused). Each service runs `<name>.ts` beside the file:
 * the caller creates those.
 */
export function grantsYaml(grants: Record<string, string[]>, trustDomain = 'shop.local'): string {
  const names = [...new Set(Object.values(grants).flat())];
  return [
    'version: 1',
    `trustDomain: ${trustDomain}`,
    'gateway:',
    '  listen: { host: 127.0.0.1, port: 8080 }',
    '  tls: off',
    'identity:',
    '  builtin: { port: 8444 }',
    ...(names.length === 0 ? [] : ['secrets:', ...names.map((name) => `  ${name}: { description: test }`)]),
    'services:',
    ...Object.entries(grants).flatMap(([service, secrets]) => [
      `  ${service}:`,
      `    run: ${service}.ts`,
      ...(secrets.length === 0 ? [] : [`    secrets: [${secrets.join(', ')}]`]),
    ]),
    '',
  ].join('\n');
}
