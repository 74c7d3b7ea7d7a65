import { Writable } from 'node:stream';

/** A writable that keeps everything written to it as text: a CLI's stdout or stderr in a test. */
export class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}
