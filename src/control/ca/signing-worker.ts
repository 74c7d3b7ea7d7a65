import { parentPort, type Transferable } from 'node:worker_threads';
import { RampartError } from '../../core/errors.ts';
import { createLeafSigner, type LeafSigner } from './leaf.ts';
import { signHere, type WorkerReply, type WorkerRequest } from './leaf-issuer.ts';
import { x509 } from './x509.ts';

/**
 * A signing thread of the CA (leaf-issuer.ts `createWorkerIssuer`): holds the signing CAs it was sent
 * and verifies CSRs and signs leaves with them. It has no database, no KEK and no other state.
 */
const port = parentPort;
if (!port) throw new Error('signing-worker.ts runs as a worker thread only');

const signers = new Map<number, LeafSigner>();

function ownsBuffer(bytes: Uint8Array): bytes is Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
}

port.on('message', (request: WorkerRequest) => {
  if (request.type === 'ca') {
    signers.set(
      request.generation,
      createLeafSigner({
        generation: request.generation,
        slot: request.slot,
        certificate: new x509.X509Certificate(request.certificate),
        privateKey: request.privateKey,
        keyId: request.keyId,
      }),
    );
    return;
  }
  if (request.type === 'forget') {
    signers.delete(request.generation);
    return;
  }
  const reply = (message: WorkerReply, transfer: Transferable[] = []) => port.postMessage(message, transfer);
  const signer = signers.get(request.generation);
  if (!signer) {
    reply({ id: request.id, ok: false, error: { message: `no signing CA ${request.generation} in this thread` } });
    return;
  }
  signHere(signer, request.job).then(
    // The certificate's bytes move to the CA's thread instead of being copied when they are the whole of
    // their buffer (they are: leaf.ts serializes into a fresh one).
    (leaf) =>
      reply({ id: request.id, ok: true, leaf }, ownsBuffer(leaf.certificateDer) ? [leaf.certificateDer.buffer] : []),
    (err: unknown) =>
      reply({
        id: request.id,
        ok: false,
        error:
          err instanceof RampartError
            ? { code: err.code, message: err.message, status: err.status, detail: err.detail }
            : { message: err instanceof Error ? err.message : String(err) },
      }),
  );
});
