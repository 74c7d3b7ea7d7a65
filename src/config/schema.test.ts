import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { manifestSchema } from './schema.ts';

const ROOT = new URL('../../', import.meta.url);
const FIXTURES = new URL('test/fixtures/manifests/', ROOT);
const published: Record<string, unknown> = JSON.parse(readFileSync(new URL('rampart.schema.json', ROOT), 'utf8'));
const readYaml = (name: string): unknown => parse(readFileSync(new URL(name, FIXTURES), 'utf8'));

/** A fresh, default Ajv (strict about unknown keywords) that fails the test on any strict-mode warning. */
function freshAjv(): Ajv {
  const complain = (...args: unknown[]) => assert.fail(`Ajv warned: ${args.join(' ')}`);
  return new Ajv({ allErrors: true, logger: { log: () => {}, warn: complain, error: complain } });
}

describe('rampart.schema.json', () => {
  test('the committed file is the generated schema (run node scripts/write-schema.ts)', () => {
    assert.deepEqual(published, JSON.parse(JSON.stringify(manifestSchema)));
  });

  test('the valid fixtures validate against the published schema with a fresh Ajv', () => {
    const validate = freshAjv().compile(published);
    for (const name of ['valid.yaml', 'valid-tls.yaml', 'valid-gateway.yaml']) {
      assert.equal(validate(readYaml(name)), true, `${name}: ${JSON.stringify(validate.errors)}`);
    }
  });

  test('the published schema rejects the structural mistakes', () => {
    const validate = freshAjv().compile(published);
    for (const name of [
      'unknown-key.yaml',
      'wrong-type.yaml',
      'missing-required.yaml',
      'lowercase-method.yaml',
      'bad-rate.yaml',
      'bad-pattern.yaml',
      'tls-auto.yaml',
      'both-identities.yaml',
      'reserved-env.yaml',
      'reserved-env-launcher.yaml',
      'reserved-service.yaml',
      'workers-range.yaml',
      'limits-unknown-key.yaml',
      'limits-range.yaml',
      'cors-bad-origin.yaml',
      'cors-bad-header.yaml',
    ]) {
      assert.equal(validate(readYaml(`broken/${name}`)), false, name);
    }
  });

  test('every property has a title and a description (editors show them)', () => {
    const missing: string[] = [];
    const visit = (node: unknown, where: string, isProperty: boolean) => {
      if (node === null || typeof node !== 'object' || Array.isArray(node)) return;
      const n = node as Record<string, unknown>;
      if (isProperty && (typeof n['title'] !== 'string' || typeof n['description'] !== 'string')) missing.push(where);
      for (const [key, child] of Object.entries((n['properties'] as Record<string, unknown>) ?? {})) {
        visit(child, `${where}.${key}`, true);
      }
      if (typeof n['additionalProperties'] === 'object') visit(n['additionalProperties'], `${where}.*`, true);
      if (n['propertyNames'] !== undefined) visit(n['propertyNames'], `${where}.<name>`, true);
      if (n['items'] !== undefined) visit(n['items'], `${where}[]`, true);
      for (const [i, branch] of ((n['oneOf'] as unknown[]) ?? []).entries()) {
        // `{ required: [...] }` branches say which keys exclude each other; they are not values.
        const typed = (branch as Record<string, unknown>)['type'] !== undefined;
        visit(branch, `${where}|${i}`, typed);
      }
    };
    visit(published, '(root)', true);
    assert.deepEqual(missing, []);
  });
});
