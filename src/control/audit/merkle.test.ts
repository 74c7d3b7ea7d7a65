import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  consistencyProof,
  EMPTY_ROOT,
  Frontier,
  inclusionProof,
  leafHash,
  memorySource,
  nodeHash,
  rootAt,
  rootFromInclusionProof,
  verifyConsistency,
  verifyInclusion,
} from './merkle.ts';

/*
 * Known-answer vectors: the eight leaves and roots of the RFC 6962 reference test suite, as published
 * in transparency-dev/merkle (the Go implementation Trillian and the CT ecosystem use):
 *   testonly/constants.go (LeafInputs, RootHashes, NodeHashes) at commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1
 *   proof/verify_test.go (inclusionProofs, consistencyProofs) at commit 02194e9afb6c1d95b5381350007963aa70fff472
 * https://github.com/transparency-dev/merkle. The same vectors originate in the certificate-transparency
 * C++ reference (merkletree tests). Facts, not code: the hex strings are the published answers.
 */
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(
  (h) => Buffer.from(h, 'hex'),
);

/** Roots of the trees of sizes 0..8 (RootHashes()). */
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
].map((h) => Buffer.from(h, 'hex'));

/** Leaf hashes (NodeHashes()[0]). */
const LEAF_HASHES = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
  '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
  '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
  'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
  '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
  'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
  '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
];

const hex = (h: string) => Buffer.from(h, 'hex');

/** verify_test.go inclusionProofs: leaf is 1-based there. */
const INCLUSION: { leaf: number; size: number; proof: string[] }[] = [
  {
    leaf: 1,
    size: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    leaf: 6,
    size: 8,
    proof: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  { leaf: 3, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  {
    leaf: 2,
    size: 5,
    proof: [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
  { leaf: 1, size: 1, proof: [] },
];

/** verify_test.go consistencyProofs. */
const CONSISTENCY: { first: number; second: number; proof: string[] }[] = [
  { first: 1, second: 1, proof: [] },
  {
    first: 1,
    second: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    first: 6,
    second: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    first: 2,
    second: 5,
    proof: [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
  {
    first: 6,
    second: 7,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];

const leafHashes = LEAVES.map(leafHash);
const source = memorySource(leafHashes);
const toHex = (list: Uint8Array[]) => list.map((h) => Buffer.from(h).toString('hex'));

test('known answers: leaf hashes and the roots of sizes 0..8 (RFC 6962 reference vectors)', () => {
  assert.deepEqual(
    leafHashes.map((h) => h.toString('hex')),
    LEAF_HASHES,
  );
  assert.deepEqual(EMPTY_ROOT, ROOTS[0]);
  for (let size = 0; size <= 8; size++) {
    assert.deepEqual(Buffer.from(rootAt(source, size)), ROOTS[size], `root of size ${size}`);
  }
});

test('known answers: the frontier yields the same roots while appending', () => {
  const frontier = Frontier.empty();
  assert.deepEqual(frontier.root(), ROOTS[0]);
  for (let i = 0; i < 8; i++) {
    frontier.push(leafHashes[i]!);
    assert.deepEqual(frontier.root(), ROOTS[i + 1], `size ${i + 1}`);
  }
  // The 8-leaf tree's interior nodes come out as NodeHashes() lists them.
  const nodes = Frontier.empty();
  const completed = leafHashes.flatMap((h) => nodes.push(h)).filter((n) => n.level > 0);
  const byLevel = (level: number) =>
    completed
      .filter((n) => n.level === level)
      .sort((a, b) => a.index - b.index)
      .map((n) => n.hash.toString('hex'));
  assert.deepEqual(byLevel(1), [
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
  ]);
  assert.deepEqual(byLevel(2), [
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ]);
  assert.deepEqual(byLevel(3), ['5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328']);
});

test('known answers: inclusion proofs are generated and verified as published', () => {
  for (const v of INCLUSION) {
    const index = v.leaf - 1;
    const proof = inclusionProof(source, index, v.size);
    assert.deepEqual(toHex(proof), v.proof, `leaf ${index} in ${v.size}`);
    assert.equal(verifyInclusion(index, v.size, leafHashes[index]!, proof.map(Buffer.from), ROOTS[v.size]!), true);
  }
});

test('known answers: consistency proofs are generated and verified as published', () => {
  for (const v of CONSISTENCY) {
    const proof = consistencyProof(source, v.first, v.second);
    assert.deepEqual(toHex(proof), v.proof, `${v.first} → ${v.second}`);
    assert.equal(verifyConsistency(v.first, v.second, ROOTS[v.first]!, ROOTS[v.second]!, proof.map(Buffer.from)), true);
  }
});

/** The probes verify_test.go applies to each valid inclusion proof; every one must fail. */
test('inclusion: each corruption of a valid proof fails (index, size, leaf, root, path)', () => {
  const some = hex('abacaba000000000000000000000000000000000000000000060061e00123456');
  for (const v of INCLUSION.filter((p) => p.proof.length > 0)) {
    const index = v.leaf - 1;
    const proof = v.proof.map(hex);
    const root = ROOTS[v.size]!;
    const leaf = leafHashes[index]!;
    const probes: [string, number, number, Uint8Array, Uint8Array[], Uint8Array][] = [
      ['index - 1', index - 1, v.size, leaf, proof, root],
      ['index + 1', index + 1, v.size, leaf, proof, root],
      ['index ^ 2', index ^ 2, v.size, leaf, proof, root],
      ['size * 2', index, v.size * 2, leaf, proof, root],
      ['size / 2', index, Math.floor(v.size / 2), leaf, proof, root],
      ['wrong leaf', index, v.size, Buffer.from('WrongLeaf'), proof, root],
      ['empty root', index, v.size, leaf, proof, EMPTY_ROOT],
      ['random root', index, v.size, leaf, proof, some],
      ['trailing garbage', index, v.size, leaf, [...proof, Buffer.alloc(0)], root],
      ['trailing root', index, v.size, leaf, [...proof, root], root],
      ['preceding garbage', index, v.size, leaf, [Buffer.alloc(0), ...proof], root],
      ['preceding root', index, v.size, leaf, [root, ...proof], root],
      ['removed component', index, v.size, leaf, proof.slice(0, -1), root],
      ['inserted component', index, v.size, leaf, [proof[0]!, some, ...proof.slice(1)], root],
    ];
    for (let i = 0; i < proof.length; i++) {
      const flipped = proof.map((p) => Buffer.from(p));
      flipped[i]![0]! ^= 8;
      probes.push([`proof[${i}] bit 3`, index, v.size, leaf, flipped, root]);
    }
    for (const [name, i, size, l, p, r] of probes) {
      assert.equal(verifyInclusion(i, size, l, p, r), false, `${name} (leaf ${index} of ${v.size})`);
    }
  }
});

test('consistency: each corruption of a valid proof fails', () => {
  for (const v of CONSISTENCY.filter((p) => p.proof.length > 0)) {
    const proof = v.proof.map(hex);
    const r1 = ROOTS[v.first]!;
    const r2 = ROOTS[v.second]!;
    const probes: [string, number, number, Uint8Array, Uint8Array, Uint8Array[]][] = [
      ['first - 1', v.first - 1, v.second, r1, r2, proof],
      ['first + 1', v.first + 1, v.second, r1, r2, proof],
      ['first ^ 2', v.first ^ 2, v.second, r1, r2, proof],
      ['second * 2', v.first, v.second * 2, r1, r2, proof],
      ['second / 2', v.first, Math.floor(v.second / 2), r1, r2, proof],
      ['wrong root1', v.first, v.second, Buffer.from('WrongRoot'), r2, proof],
      ['wrong root2', v.first, v.second, r1, Buffer.from('WrongRoot'), proof],
      ['swapped roots', v.first, v.second, r2, r1, proof],
      ['empty proof', v.first, v.second, r1, r2, []],
      ['trailing garbage', v.first, v.second, r1, r2, [...proof, Buffer.alloc(0)]],
      ['trailing root1', v.first, v.second, r1, r2, [...proof, r1]],
      ['trailing root2', v.first, v.second, r1, r2, [...proof, r2]],
      ['preceding garbage', v.first, v.second, r1, r2, [Buffer.alloc(0), ...proof]],
      ['preceding root1', v.first, v.second, r1, r2, [r1, ...proof]],
      ['preceding root2', v.first, v.second, r1, r2, [r2, ...proof]],
      ['preceding proof[0]', v.first, v.second, r1, r2, [proof[0]!, ...proof]],
      ['truncated', v.first, v.second, r1, r2, proof.slice(0, -1)],
    ];
    for (let i = 0; i < proof.length; i++) {
      const flipped = proof.map((p) => Buffer.from(p));
      flipped[i]![0]! ^= 16;
      probes.push([`proof[${i}] bit 4`, v.first, v.second, r1, r2, flipped]);
    }
    for (const [name, f, s, a, b, p] of probes) {
      assert.equal(verifyConsistency(f, s, a, b, p), false, `${name} (${v.first} → ${v.second})`);
    }
  }
});

test('consistency: the trivial cases', () => {
  const r = ROOTS[3]!;
  assert.equal(verifyConsistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, []), true);
  assert.equal(verifyConsistency(0, 5, EMPTY_ROOT, ROOTS[5]!, []), true);
  assert.equal(verifyConsistency(0, 5, r, ROOTS[5]!, []), false, 'the empty tree has one root');
  assert.equal(verifyConsistency(3, 3, r, r, []), true);
  assert.equal(verifyConsistency(3, 3, r, ROOTS[4]!, []), false);
  assert.equal(verifyConsistency(3, 3, r, r, [r]), false, 'equal sizes need an empty proof');
  assert.equal(verifyConsistency(4, 3, ROOTS[4]!, r, []), false, 'time travel');
  assert.equal(verifyConsistency(1, 2, ROOTS[1]!, ROOTS[2]!, []), false, 'empty proof for 0 < m < n');
  assert.equal(verifyInclusion(0, 0, leafHashes[0]!, [], EMPTY_ROOT), false, 'no leaf in an empty tree');
  assert.equal(rootFromInclusionProof(-1, 3, leafHashes[0]!, []), null);
  assert.throws(() => inclusionProof(source, 8, 8), RangeError);
  assert.throws(() => consistencyProof(source, 5, 4), RangeError);
});

/** A reference MTH straight from the RFC's recursive definition (§2.1.1), for the properties. */
function referenceRoot(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return EMPTY_ROOT;
  if (leaves.length === 1) return leaves[0]!;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(referenceRoot(leaves.slice(0, k)), referenceRoot(leaves.slice(k)));
}

const leafList = fc
  .array(fc.uint8Array({ maxLength: 16 }), { minLength: 1, maxLength: 70 })
  .map((entries) => entries.map((e) => leafHash(e)));

test('property: roots from stored subtrees, the frontier and the RFC recursion agree', () => {
  fc.assert(
    fc.property(leafList, (leaves) => {
      const src = memorySource(leaves);
      const frontier = Frontier.empty();
      for (let i = 0; i < leaves.length; i++) {
        frontier.push(leaves[i]!);
        const expected = referenceRoot(leaves.slice(0, i + 1));
        assert.deepEqual(frontier.root(), expected);
        assert.deepEqual(Buffer.from(rootAt(src, i + 1)), expected);
        assert.deepEqual(Frontier.fromSource(src, i + 1).root(), expected);
      }
    }),
  );
});

test('property: every inclusion proof verifies; a tampered leaf, index or proof does not', () => {
  fc.assert(
    fc.property(
      leafList.chain((leaves) => fc.tuple(fc.constant(leaves), fc.nat(leaves.length - 1), fc.nat(), fc.nat(255))),
      ([leaves, index, pick, bit]) => {
        const src = memorySource(leaves);
        const size = leaves.length;
        const root = rootAt(src, size);
        const proof = inclusionProof(src, index, size);
        assert.equal(verifyInclusion(index, size, leaves[index]!, proof, root), true);
        const flipped = Buffer.from(leaves[index]!);
        flipped[bit % 32]! ^= 1 << (pick % 8);
        assert.equal(verifyInclusion(index, size, flipped, proof, root), false, 'tampered leaf');
        if (proof.length > 0) {
          const tampered = proof.map((p) => Buffer.from(p));
          tampered[pick % tampered.length]![bit % 32]! ^= 0x80;
          assert.equal(verifyInclusion(index, size, leaves[index]!, tampered, root), false, 'tampered proof');
          assert.equal(verifyInclusion(index, size, leaves[index]!, proof.slice(1), root), false, 'shortened');
        }
        const other = (index + 1 + (pick % size)) % size;
        if (other !== index && Buffer.compare(leaves[other]!, leaves[index]!) !== 0) {
          assert.equal(verifyInclusion(other, size, leaves[index]!, proof, root), false, 'wrong index');
        }
      },
    ),
  );
});

test('property: every consistency proof between sizes m ≤ n verifies; a tampered one does not', () => {
  fc.assert(
    fc.property(
      leafList.chain((leaves) =>
        fc.tuple(fc.constant(leaves), fc.integer({ min: 0, max: leaves.length }), fc.nat(), fc.nat(255)),
      ),
      ([leaves, a, pick, bit]) => {
        const src = memorySource(leaves);
        const n = leaves.length;
        const m = Math.min(a, n);
        const rootM = rootAt(src, m);
        const rootN = rootAt(src, n);
        const proof = consistencyProof(src, m, n);
        assert.equal(verifyConsistency(m, n, rootM, rootN, proof), true, `${m} → ${n}`);
        if (proof.length > 0) {
          const tampered = proof.map((p) => Buffer.from(p));
          tampered[pick % tampered.length]![bit % 32]! ^= 0x01;
          assert.equal(verifyConsistency(m, n, rootM, rootN, tampered), false, 'tampered proof');
          const otherRoot = Buffer.from(rootN);
          otherRoot[bit % 32]! ^= 0x40;
          assert.equal(verifyConsistency(m, n, rootM, otherRoot, proof), false, 'tampered new root');
          const otherOld = Buffer.from(rootM);
          otherOld[bit % 32]! ^= 0x40;
          assert.equal(verifyConsistency(m, n, otherOld, rootN, proof), false, 'tampered old root');
        }
      },
    ),
  );
});
