/**
 * A writer process for test/safety/device.test.ts, meant to be SIGKILLed
 * mid-session: opens the image for writing and loops forever over journaled
 * operations — temporary files (created, grown, kept or released), and
 * growing a real file with allocate — printing "ready" once it is well into
 * its work. Usage: node --import tsx child-writer.ts IMAGE [keep]
 *   keep: leave every other temp file on the orphan list (needs an orphan
 *   file: on the old list only the tail orphan can be grown by allocate).
 */
import { Filesystem } from '../../lib/node.js';
import { createTempFile, releaseTempFile } from '../../lib/ext4/temp-file.js';
import { allocate, ALLOC_FIXED_LEN } from '../../lib/ops/allocate.js';

const [img, mode] = process.argv.slice(2);
if (!img) throw new Error('usage: child-writer.ts IMAGE [keep]');
const fs = await Filesystem.open(img, { write: true, mmp: { sleep: async () => undefined } });
process.stdout.write('open\n');
const bs = fs.blockSize;
const grow = await fs.resolve('/grow');
let growEnd = Math.ceil(grow.size / bs) * bs;
for (let i = 0; ; i++) {
  const t = await createTempFile(fs, { goalGroup: i % fs.sb.groupCount });
  await allocate(fs, { ino: t }, { offset: 0, len: (1 + (i % 5)) * 8 * bs, flags: ALLOC_FIXED_LEN });
  await allocate(fs, { ino: t }, { offset: 64 * bs, len: 4 * bs, flags: ALLOC_FIXED_LEN });
  if (mode !== 'keep' || i % 2 === 1) await releaseTempFile(fs, t);
  if (growEnd < 8 << 20) {
    await allocate(fs, '/grow', { offset: growEnd, len: 2 * bs, flags: ALLOC_FIXED_LEN });
    growEnd += 2 * bs;
  }
  if (i === 4) process.stdout.write('ready\n');
}
