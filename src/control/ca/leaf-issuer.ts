import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { threadId, Worker } from 'node:worker_threads';
import { RampartError } from '../../core/errors.ts';
import { verifyCsr } from './csr.ts';
import { CA_ERRORS, caError } from './errors.ts';
import { createLeafSigner, type LeafSigner } from './leaf.ts';
import type { SigningCa } from './signing-ca.ts';

/**
 * Where CSRs are verified and leaves signed: in this thread, or spread over worker threads.
 *
 * Most of the cost of an issuance is ASN.1 work in JavaScript (parse the CSR, encode the certificate);
 * the CSR's signature is checked in the calling thread (csr.ts), the leaf is signed on libuv's pool.
 * Worker threads scale that with the cores, while the main thread keeps only the database (one
 * writer, group commit) — worth it only where the main thread has a core of its own
 * (`autoSigningThreads`). Figures: bench/README.md, `ca-issuance.bench.ts`.
 *
 * Workers receive each signing CA's key as a non-extractable CryptoKey (structured clone: the same
 * process, no serialization of key material), once per CA generation.
 */
export interface SignJob {
  csr: string | Uint8Array;
  spiffeId: string;
  serial: string;
  notBefore: number;
  notAfter: number;
}

/** A verified CSR's leaf, signed. */
export interface SignedLeaf {
  certificateDer: Uint8Array;
  /** What the certificate says (one-second resolution). */
  notBefore: number;
  notAfter: number;
  /** SHA-256 of the CSR's SubjectPublicKeyInfo, hex. */
  publicKeySha256: string;
  /** The thread that signed (`worker_threads.threadId`; 0 is the main thread): for diagnostics. */
  threadId: number;
}

export interface LeafIssuer {
  /** Verifies the CSR (csr.ts) and signs the leaf (leaf.ts) with `ca`. Throws CA_ERR_CSR_* for bad CSRs. */
  issue(ca: SigningCa, job: SignJob): Promise<SignedLeaf>;
  /** Forgets a retired CA (workers drop its key). */
  forget(generation: number): void;
  /** Stops the workers; pending jobs fail with CA_ERR_CLOSED. */
  close(): Promise<void>;
}

/** Verifies the CSR and signs its leaf in the calling thread (also what each worker runs). */
export async function signHere(signer: LeafSigner, job: SignJob): Promise<SignedLeaf> {
  const csr = await verifyCsr(job.csr);
  const { spiffeId, serial, notBefore, notAfter } = job;
  const cert = await signer.sign({ csr, spiffeId, serial, notBefore, notAfter });
  return {
    certificateDer: cert.der,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    publicKeySha256: csr.publicKeySha256,
    threadId,
  };
}

/** Verifies and signs in this thread. */
export function createLocalIssuer(): LeafIssuer {
  const signers = new Map<number, LeafSigner>();
  const signerFor = (ca: SigningCa) => {
    let signer = signers.get(ca.generation);
    if (signer?.ca !== ca) {
      signer = createLeafSigner(ca);
      signers.set(ca.generation, signer);
    }
    return signer;
  };
  return {
    issue: (ca, job) => signHere(signerFor(ca), job),
    forget: (generation) => signers.delete(generation),
    close: async () => signers.clear(),
  };
}

/**
 * How many signing threads `auto` means here: one per core but one, up to 4 — the CA's own thread keeps
 * a core for the database commits and the API — and none where workers are not permitted or that leaves
 * fewer than two. On two cores the threads only compete with the thread that feeds them: measured there,
 * 2 threads ran at 2.5 ms of CPU per SVID and 1 thread at 1.75–2.0 ms against 1.4–1.6 ms in this thread
 * (bench/README.md, `ca-issuance.bench.ts`).
 */
export function autoSigningThreads(): number {
  const permission = (process as { permission?: { has(scope: string): boolean } }).permission;
  if (permission && !permission.has('worker')) return 0;
  const threads = Math.min(availableParallelism() - 1, 4);
  return threads >= 2 ? threads : 0;
}

/** Messages to a worker. */
export type WorkerRequest =
  | {
      type: 'ca';
      generation: number;
      slot: SigningCa['slot'];
      certificate: Uint8Array;
      privateKey: SigningKey;
      keyId: string;
    }
  | { type: 'forget'; generation: number }
  | { type: 'issue'; id: number; generation: number; job: SignJob };

/** Messages from a worker. */
export type WorkerReply =
  | { id: number; ok: true; leaf: SignedLeaf }
  | {
      id: number;
      ok: false;
      error: { code?: string; message: string; status?: number; detail?: Record<string, unknown> };
    };

type SigningKey = SigningCa['privateKey'];

interface Slot {
  worker: Worker;
  /** CA generations this worker holds. */
  generations: Set<number>;
  pending: Map<number, { resolve: (leaf: SignedLeaf) => void; reject: (error: unknown) => void }>;
}

function reviveError(error: Extract<WorkerReply, { ok: false }>['error']): Error {
  if (error.code) {
    return new RampartError(error.code, error.message, { status: error.status ?? 500, detail: error.detail });
  }
  return new Error(error.message);
}

/**
 * Verifies and signs on `threads` worker threads (started on first use, least-loaded first). A worker
 * that dies fails its pending jobs and is replaced on the next job.
 */
export function createWorkerIssuer(threads: number): LeafIssuer {
  if (!Number.isSafeInteger(threads) || threads < 1) throw caError(CA_ERRORS.config, { field: 'signingThreads' });
  // The worker runs from source in a checkout (.ts, type stripping) and from dist/ when installed (.js).
  const script = new URL(`./signing-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
  const slots: (Slot | null)[] = Array.from({ length: threads }, () => null);
  let nextId = 1;
  let closed = false;

  const fail = (slot: Slot, error: unknown) => {
    for (const { reject } of slot.pending.values()) reject(error);
    slot.pending.clear();
    const index = slots.indexOf(slot);
    if (index !== -1) slots[index] = null;
  };

  const start = (index: number): Slot => {
    const worker = new Worker(script);
    const slot: Slot = { worker, generations: new Set(), pending: new Map() };
    worker.unref(); // an idle pool never keeps the process alive; pending jobs ref it (below)
    worker.on('message', (reply: WorkerReply) => {
      const waiter = slot.pending.get(reply.id);
      if (!waiter) return;
      slot.pending.delete(reply.id);
      if (slot.pending.size === 0) worker.unref();
      if (reply.ok) waiter.resolve(reply.leaf);
      else waiter.reject(reviveError(reply.error));
    });
    worker.on('error', (err) => fail(slot, caError(CA_ERRORS.signingThread, { reason: 'worker error' }, err)));
    worker.on('exit', (code) => fail(slot, caError(closed ? CA_ERRORS.closed : CA_ERRORS.signingThread, { code })));
    slots[index] = slot;
    return slot;
  };

  const pick = (): Slot => {
    let best = -1;
    let load = Number.POSITIVE_INFINITY;
    for (let i = 0; i < slots.length; i++) {
      const size = slots[i]?.pending.size ?? 0;
      if (size < load) {
        best = i;
        load = size;
      }
    }
    return slots[best] ?? start(best);
  };

  return {
    issue(ca, job) {
      if (closed) return Promise.reject(caError(CA_ERRORS.closed));
      const slot = pick();
      if (!slot.generations.has(ca.generation)) {
        const message: WorkerRequest = {
          type: 'ca',
          generation: ca.generation,
          slot: ca.slot,
          certificate: new Uint8Array(ca.certificate.rawData),
          privateKey: ca.privateKey,
          keyId: ca.keyId,
        };
        slot.worker.postMessage(message);
        slot.generations.add(ca.generation);
      }
      const id = nextId++;
      return new Promise<SignedLeaf>((resolve, reject) => {
        slot.pending.set(id, { resolve, reject });
        slot.worker.ref();
        const message: WorkerRequest = { type: 'issue', id, generation: ca.generation, job };
        slot.worker.postMessage(message);
      });
    },
    forget(generation) {
      for (const slot of slots) {
        if (!slot?.generations.delete(generation)) continue;
        const message: WorkerRequest = { type: 'forget', generation };
        slot.worker.postMessage(message);
      }
    },
    async close() {
      closed = true;
      await Promise.all(slots.map((slot) => slot?.worker.terminate()));
    },
  };
}
