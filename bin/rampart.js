#!/usr/bin/env node
// The `rampart` command. From a checkout it runs the TypeScript sources directly (Node 24 strips types);
// from an installed package (inside node_modules, where Node does not strip types) it runs the built
// JavaScript in dist/ (DESIGN.md, Distribution).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const fromSource = !source.includes('/node_modules/') && existsSync(source);
const entry = fromSource ? '../src/cli/main.ts' : '../dist/cli/main.js';
const { main } = await import(entry);
process.exitCode = await main(process.argv.slice(2));
