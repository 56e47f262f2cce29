/**
 * Opens an image for writing (taking MMP if the fs has it), prints "held"
 * and returns without closing: the process must still exit promptly (the
 * MMP refresh timer is unref'd), leaving the MMP block in the FSCK state.
 * Usage: node --import tsx child-hold.ts IMAGE
 */
import { Filesystem } from '../../lib/node.js';
import { internals } from '../../lib/ext4/internals.js';

const img = process.argv[2];
if (!img) throw new Error('usage: child-hold.ts IMAGE');
const fs = await Filesystem.open(img, { write: true, mmp: { sleep: async () => undefined, refreshMs: 10 } });
process.stdout.write(`held ${internals(fs).mmp ? 'mmp' : 'no-mmp'}\n`);
