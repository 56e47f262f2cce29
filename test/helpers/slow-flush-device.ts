/**
 * A MemoryDevice whose flushes take `ms` (a timer), so the host's next steps run while one is in
 * flight: a MemoryDevice flushes at once, which hides ordering bugs of deferred commits (a test of
 * writes issued early passed with every write issued early). `failAt`: the n-th flush (from 1)
 * fails with EIO.
 */
import { Ext4Error } from '../../lib/errors.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';

export class SlowFlushDevice extends MemoryDevice {
  flushes = 0;
  failAt = -1;
  constructor(data: Uint8Array, private readonly ms = 1) {
    super(data);
  }
  override async flush(): Promise<void> {
    await new Promise((r) => setTimeout(r, this.ms));
    if (++this.flushes === this.failAt) throw new Ext4Error('EIO', 'flush failed (test)');
    return super.flush();
  }
}
