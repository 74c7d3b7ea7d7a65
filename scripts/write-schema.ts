/**
 * Writes `rampart.schema.json` (the published JSON Schema of rampart.yaml) from src/config/schema.ts,
 * formatted the way Biome formats JSON so `biome check .` stays clean.
 *
 *   node scripts/write-schema.ts           write it
 *   node scripts/write-schema.ts --check   exit 1 if the committed file differs from the schema
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { manifestSchema } from '../src/config/schema.ts';

const target = fileURLToPath(new URL('../rampart.schema.json', import.meta.url));

if (process.argv.includes('--check')) {
  const committed: unknown = JSON.parse(readFileSync(target, 'utf8'));
  if (!isDeepStrictEqual(committed, JSON.parse(JSON.stringify(manifestSchema)))) {
    console.error('rampart.schema.json is out of date: run node scripts/write-schema.ts');
    process.exitCode = 1;
  }
} else {
  writeFileSync(target, `${JSON.stringify(manifestSchema, null, 2)}\n`);
  const biome = fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url));
  const result = spawnSync(biome, ['format', '--write', target], { encoding: 'utf8' });
  if (result.status !== 0) {
    console.error(`biome format failed; rampart.schema.json is written but unformatted\n${result.stderr}`);
    process.exitCode = 1;
  }
}
