/**
 * node:fs's Dir for the Volume's opendir: read() one Dirent at a time (null at the end), the async
 * iterator (which closes the Dir when it ends, as Node's does), close() and asyncDispose. The
 * entries ('.' and '..' left out) are listed when the Dir is opened — a snapshot under the
 * filesystem's lock — where Node reads the kernel's directory stream in batches; names created or
 * removed after opendir may or may not show in Node, and here do not. A closed Dir answers
 * ERR_DIR_CLOSED as Node's does (read throws it synchronously, close rejects).
 */
import { Dirent } from './fs-stats.js';

/** Node's ERR_DIR_CLOSED. */
function dirClosed(): Error {
  return Object.assign(new Error('Directory handle was closed'), { code: 'ERR_DIR_CLOSED' });
}

export class Dir {
  readonly path: string;
  #entries: Dirent[];
  #next = 0;
  #closed = false;

  constructor(path: string, entries: Dirent[]) {
    this.path = path;
    this.#entries = entries;
  }

  /** The next entry, null at the end; on a closed Dir it throws at once (Node's read does not reject). */
  read(): Promise<Dirent | null> {
    if (this.#closed) throw dirClosed();
    return Promise.resolve(this.#entries[this.#next++] ?? null);
  }

  /** Rejects with ERR_DIR_CLOSED when closed already. */
  async close(): Promise<void> {
    if (this.#closed) throw dirClosed();
    this.#closed = true;
    this.#entries = [];
  }

  async *entries(): AsyncGenerator<Dirent> {
    try {
      for (;;) {
        const d = await this.read();
        if (!d) break;
        yield d;
      }
    } finally {
      if (!this.#closed) await this.close();
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Dirent> {
    return this.entries();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#closed) await this.close();
  }
}
