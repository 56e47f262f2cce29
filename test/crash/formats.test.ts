/**
 * The crash harness of crash.test.ts on the other journal formats and
 * checkpoint policies: 32-bit block tags and revoke records without
 * checksums, lazy checkpointing forced to checkpoint often (new log cycles,
 * s_sequence carried over), and 64-bit tags without checksums with a
 * checkpoint after every commit.
 */
import { describe, it } from 'vitest';
import { checkScenario, HAVE_TOOLS, SCENARIOS } from './scenario.js';

if (!HAVE_TOOLS) console.log('skipping crash tests: e2fsprogs (mkfs.ext4, e2fsck, debugfs, dumpe2fs) not installed');

describe.skipIf(!HAVE_TOOLS)('crash points of a journaled workload, other journal formats', () => {
  for (const sc of SCENARIOS.slice(1)) it(sc.label, () => checkScenario(sc), 400_000);
});
