/**
 * Crash safety of the journaled write path (jbd2.md §10), default journal
 * format (metadata_csum: csum v3 tags, 64-bit) with lazy checkpointing.
 *
 * A workload (harness.ts: a depth-2 extent tree grown by non-contiguous
 * allocations, unwritten→written conversions, punches, movedata remaps,
 * truncates down to nothing; 15 transactions, revokes included) runs on a
 * MemoryDevice inside a RecordingDevice, open and close included. For every
 * prefix of the write log, plus deterministic random sets of un-flushed writes
 * lost, the crash image is built and:
 *  - every point: ext4kit opens it for writing (replaying the journal) and
 *    closes it; the result must be exactly the state after the transactions
 *    whose commit block survived (every allocated metadata/non-journal block
 *    byte-identical to that state, superblock counts equal, RECOVER clear,
 *    journal empty) and /f and /g must read as the model says;
 *  - a deterministic sample (half at commit boundaries): a copy is replayed
 *    by `e2fsck -fp -E journal_only` instead; both replays must pass e2fsck
 *    -fn with nothing printed, and `debugfs dump` of the e2fsck copy must
 *    equal the model and what ext4kit read from its own replay.
 * formats.test.ts runs the same on the other journal formats and policies.
 */
import { describe, it } from 'vitest';
import { checkScenario, HAVE_TOOLS, SCENARIOS } from './scenario.js';

if (!HAVE_TOOLS) console.log('skipping crash tests: e2fsprogs (mkfs.ext4, e2fsck, debugfs, dumpe2fs) not installed');

describe.skipIf(!HAVE_TOOLS)('crash points of a journaled workload', () => {
  const sc = SCENARIOS[0]!;
  it(sc.label, () => checkScenario(sc), 400_000);
});
