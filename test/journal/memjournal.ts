/** An in-memory journal for unit and hostile-input tests (no tools needed). */
import { jsbChecksum, BLOCKTYPE, JBD2_MAGIC, JINCOMPAT, JournalHeaderLayout, JournalSuperblockLayout, parseJournalSuperblock, serializeJournalSuperblock, type JournalSuperblock } from '../../lib/jbd2/format.js';
import { buildTransaction } from '../../lib/jbd2/log-writer.js';
import type { JournalAccess } from '../../lib/jbd2/recovery.js';

export function makeJsbBlock(opts: { bs: number; maxlen: number; incompat?: number; compat?: number; sequence?: number; start?: number; uuid?: Uint8Array; version?: 1 | 2; numFc?: number }): Uint8Array {
  const b = new Uint8Array(opts.bs);
  JournalHeaderLayout.encode({ h_magic: JBD2_MAGIC, h_blocktype: opts.version === 1 ? BLOCKTYPE.SUPERBLOCK_V1 : BLOCKTYPE.SUPERBLOCK_V2, h_sequence: 0 }, b);
  const inc = opts.incompat ?? 0;
  JournalSuperblockLayout.encode(
    {
      s_blocksize: opts.bs, s_maxlen: opts.maxlen, s_first: 1, s_sequence: opts.sequence ?? 1, s_start: opts.start ?? 0, s_errno: 0,
      s_feature_compat: opts.compat ?? 0, s_feature_incompat: inc, s_feature_ro_compat: 0,
      s_uuid: opts.uuid ?? new Uint8Array(16).map((_, i) => i * 17 + 3),
      s_nr_users: 1, s_dynsuper: 0, s_max_transaction: 0, s_max_trans_data: 0,
      s_checksum_type: inc & (JINCOMPAT.CSUM_V2 | JINCOMPAT.CSUM_V3) ? 4 : 0,
      s_num_fc_blks: opts.numFc ?? 0, s_head: 0, s_checksum: 0, s_users: new Uint8Array(768),
    },
    b,
  );
  if (inc & (JINCOMPAT.CSUM_V2 | JINCOMPAT.CSUM_V3)) new DataView(b.buffer).setUint32(JournalSuperblockLayout.offsetOf('s_checksum'), jsbChecksum(b), false);
  return b;
}

export class MemJournal {
  blocks: Uint8Array[];
  reads = 0;
  constructor(readonly bs: number, maxlen: number, jsbBlock: Uint8Array) {
    this.blocks = Array.from({ length: maxlen }, () => new Uint8Array(bs));
    this.blocks[0] = jsbBlock;
  }
  get jsb(): JournalSuperblock {
    return parseJournalSuperblock(this.blocks[0]!, { kind: 'field', field: 'mem' });
  }
  set jsb(j: JournalSuperblock) {
    this.blocks[0] = serializeJournalSuperblock(j);
  }
  access(): JournalAccess & { writeBlock(n: number, d: Uint8Array): Promise<void> } {
    return {
      blockSize: this.bs,
      blockCount: this.blocks.length,
      readBlock: async (n) => {
        this.reads++;
        if (this.reads > 10_000_000) throw new Error('runaway reads');
        const b = this.blocks[n];
        if (!b) throw new Error(`read outside the journal: ${n}`);
        return b.slice();
      },
      writeBlock: async (n, d) => {
        this.blocks[n] = d.slice();
      },
    };
  }
  clone(): MemJournal {
    const m = new MemJournal(this.bs, this.blocks.length, this.blocks[0]!);
    m.blocks = this.blocks.map((b) => b.slice());
    return m;
  }
}

export interface Logged {
  mem: MemJournal;
  /** Every (fsBlock → data) a correct replay may write, per transaction. */
  txBlocks: Map<number, Uint8Array>[];
  /** Journal blocks by role. */
  roles: Map<number, 'descriptor' | 'data' | 'revoke' | 'commit'>;
}

/** A journal with `n` transactions built by the log writer (deterministic content). */
export function buildMemLog(opts: { bs: number; maxlen: number; incompat: number; n: number; perTx: number; firstTid?: number; start?: number; rnd: (n: number) => Uint8Array; revokeEvery?: number }): Logged {
  const first = opts.firstTid ?? 100;
  const start = opts.start ?? 1;
  const mem = new MemJournal(opts.bs, opts.maxlen, makeJsbBlock({ bs: opts.bs, maxlen: opts.maxlen, incompat: opts.incompat | JINCOMPAT.REVOKE, sequence: first, start }));
  const jsb = mem.jsb;
  const txBlocks: Map<number, Uint8Array>[] = [];
  const roles = new Map<number, 'descriptor' | 'data' | 'revoke' | 'commit'>();
  let pos = start;
  for (let t = 0; t < opts.n; t++) {
    const blocks = Array.from({ length: opts.perTx }, (_, i) => {
      const data = opts.rnd(opts.bs);
      if (i % 5 === 0) new DataView(data.buffer).setUint32(0, JBD2_MAGIC, false);
      return { fsBlock: 1000 + ((t * 7 + i * 3) % 97), data };
    }).filter((b, i, a) => a.findIndex((x) => x.fsBlock === b.fsBlock) === i);
    const revokes = opts.revokeEvery && t % opts.revokeEvery === 1 ? [1000 + (t % 97), 1003] : [];
    const built = buildTransaction({ jsb, tid: (first + t) >>> 0, startBlock: pos, blocks, revokes, commitTime: { sec: 1_700_000_000 + t, nsec: 0 } });
    for (const w of built.writes) {
      mem.blocks[w.journalBlock] = w.data;
      const type = JournalHeaderLayout.decode(w.data);
      roles.set(w.journalBlock, type.h_magic === JBD2_MAGIC && type.h_blocktype === BLOCKTYPE.DESCRIPTOR ? 'descriptor' : type.h_magic === JBD2_MAGIC && type.h_blocktype === BLOCKTYPE.REVOKE ? 'revoke' : 'data');
    }
    mem.blocks[built.commitBlock.journalBlock] = built.commitBlock.data;
    roles.set(built.commitBlock.journalBlock, 'commit');
    txBlocks.push(new Map(blocks.map((b) => [b.fsBlock, b.data])));
    pos = built.nextBlock;
  }
  return { mem, txBlocks, roles };
}
