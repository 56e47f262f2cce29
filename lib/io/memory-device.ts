/**
 * MemoryDevice: a fixed-size BlockDevice over a Uint8Array. Used by tests,
 * crash simulation (RecordingDevice + materialise), a browser's in-memory image,
 * and small images loaded whole (`memoryDeviceFromFile` in ext4kit/node).
 *
 * The device works on the array it is given (no copy): `data` shows every
 * write. read() returns a copy, so callers may mutate what they get.
 */
import { Ext4Error } from '../errors.js';
import type { BlockDevice } from './device.js';
import { byteRange, checkRange } from './util.js';

export interface MemoryDeviceOptions {
  readOnly?: boolean;
  /** Name used in error messages. Default "memory". */
  name?: string;
}

export class MemoryDevice implements BlockDevice {
  readonly readOnly: boolean;
  readonly name: string;
  private bytes: Uint8Array;
  private closed = false;

  constructor(data: Uint8Array, options: MemoryDeviceOptions = {}) {
    this.bytes = data;
    this.readOnly = options.readOnly ?? false;
    this.name = options.name ?? 'memory';
  }

  /** A zero-filled device of `size` bytes. */
  static create(size: number, options: MemoryDeviceOptions = {}): MemoryDevice {
    if (!Number.isSafeInteger(size) || size < 0) throw new Ext4Error('EINVAL', `invalid memory device size ${size}`);
    try {
      return new MemoryDevice(new Uint8Array(size), options);
    } catch (e) {
      throw new Ext4Error('ENOMEM', `cannot allocate a ${size}-byte memory device`, { cause: e });
    }
  }

  get size(): number {
    return this.bytes.length;
  }

  /** The backing array itself (live, not a copy). */
  get data(): Uint8Array {
    return this.bytes;
  }

  private check(op: string): void {
    if (this.closed) throw new Ext4Error('EINVAL', `${op} on closed device`, { structure: this.name });
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    this.check('read');
    checkRange(this.name, 'read', position, length);
    if (position + length > this.bytes.length) {
      throw new Ext4Error('EIO', `short read: device ends at byte ${this.bytes.length}`, { structure: this.name, location: byteRange(position, length) });
    }
    return this.bytes.slice(position, position + length);
  }

  /** Nothing caches a memory device: the same as read. */
  readUncached(position: number, length: number): Promise<Uint8Array> {
    return this.read(position, length);
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    this.check('write');
    if (this.readOnly) throw new Ext4Error('EROFS', 'device is read-only', { structure: this.name, location: byteRange(position, data.length) });
    checkRange(this.name, 'write', position, data.length);
    if (position + data.length > this.bytes.length) {
      throw new Ext4Error('ENOSPC', `write past the end of the device (size ${this.bytes.length})`, {
        structure: this.name,
        location: byteRange(position, data.length),
      });
    }
    this.bytes.set(data, position);
  }

  async flush(): Promise<void> {
    this.check('flush');
  }

  /** Idempotent. The data stays readable through `data`. */
  async close(): Promise<void> {
    this.closed = true;
  }
}
