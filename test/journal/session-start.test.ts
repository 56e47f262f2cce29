/**
 * How a write session begins on disk (write-session.ts start(), issue 10 item 3):
 *  - one flush before the first commit's log: the superblock with needs_recovery, flushed; the
 *    journal superblock (features, the new log's start) is written with that commit's log, durable
 *    before its commit block, as the kernel writes it after a mount that found the log empty (it
 *    took a flush of its own, before the superblock's), and only once that flush has completed (a
 *    live log without needs_recovery is what e2fsck -p refuses to preen); the copy (the first
 *    commit's ordered data) is written while that flush runs;
 *  - movedata's copy reads its source from the time the step is planned, before the session's
 *    first write (copy-runs.ts startCopy), and still writes nothing before the journal takes it;
 *  - a log the kernel discards (s_start ≠ 0 without needs_recovery) is emptied durably before
 *    needs_recovery is set, and the new log's tids start past its transactions
 *    (jbd2_journal_skip_recovery): at no crash point of the new session can recovery replay one
 *    of its stale transactions.
 * Final images pass e2fsck; the moved file reads as debugfs dumps it.
 */
import * as nodeFs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { BlockDevice } from '../../lib/io/device.js';
import { FileDevice } from '../../lib/io/file-device.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice, crashPoints, materialise, type CrashPoint } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { INCOMPAT, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, parseSuperblock, serializeSuperblock } from '../../lib/ext4/superblock.js';
import { internals } from '../../lib/ext4/internals.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { journalOnDevice } from '../../lib/jbd2/device.js';
import { parseJournalSuperblock } from '../../lib/jbd2/format.js';
import { recoverJournal } from '../../lib/jbd2/recovery.js';
import { movedata } from '../../lib/ops/movedata.js';
import { cleanupImages, HAVE_E2FSPROGS, makeImage, pattern, sameBytes } from '../ops/helpers.js';
import { debugfsDump, expectE2fsckClean } from '../helpers/tools.js';

const B = 4096;
const N = 64; // blocks moved

type Event = { op: 'read' | 'write'; pos: number; len: number } | { op: 'flush' } | { op: 'flushed' };

/**
 * A device that logs the order of reads, writes, flushes and their completions ('flushed').
 * `holdFlush`: a flush issued while it is set completes only once a write matching it has been
 * issued (or after 3 s), to show what the caller issues while a flush runs.
 */
class EventDevice implements BlockDevice {
  readonly events: Event[] = [];
  holdFlush: ((e: Event) => boolean) | null = null;
  private waiter: (() => void) | null = null;
  constructor(private readonly inner: BlockDevice) {}
  get size(): number {
    return this.inner.size;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  get name(): string {
    return this.inner.name;
  }
  read(pos: number, len: number): Promise<Uint8Array> {
    this.events.push({ op: 'read', pos, len });
    return this.inner.read(pos, len);
  }
  async readInto(pos: number, target: Uint8Array): Promise<void> {
    this.events.push({ op: 'read', pos, len: target.length });
    if (this.inner.readInto) return this.inner.readInto(pos, target);
    target.set(await this.inner.read(pos, target.length));
  }
  write(pos: number, data: Uint8Array): Promise<void> {
    const e: Event = { op: 'write', pos, len: data.length };
    this.events.push(e);
    if (this.waiter && this.holdFlush?.(e)) this.waiter();
    return this.inner.write(pos, data);
  }
  async flush(): Promise<void> {
    this.events.push({ op: 'flush' });
    const hold = this.holdFlush;
    if (hold) {
      this.holdFlush = null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 3000);
        this.holdFlush = hold;
        this.waiter = () => (clearTimeout(t), (this.waiter = null), (this.holdFlush = null), resolve());
      });
    }
    await this.inner.flush();
    this.events.push({ op: 'flushed' });
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Journal block n → fs block, through the journal inode's map. */
function physicalOf(map: readonly Extent[]): (n: number) => number {
  return (n) => {
    const e = map.find((x) => n >= x.logical && n < x.logical + x.length);
    if (!e) throw new Error(`journal block ${n} unmapped`);
    return e.physical + (n - e.logical);
  };
}

afterEach(() => cleanupImages());

describe.skipIf(!HAVE_E2FSPROGS)('write session start', () => {
  it('one flush before the first log: needs_recovery durable first, the copy written while it runs, the journal superblock with the log once it completed; the copy is read before anything is written', async () => {
    const data = pattern(N * B, 1);
    const img = makeImage('ss-order', { data, space: pattern(N * B, 2) });
    const dev = new EventDevice(await FileDevice.open(img, { write: true }));
    const fs = await Filesystem.open(dev, { write: true, closeDevice: true });
    let events: Event[];
    let jsbPos = 0, dataPos = 0, spacePos = 0;
    try {
      jsbPos = physicalOf(internals(fs).journal!.map)(0) * B;
      dataPos = (await fs.fileMap(await fs.resolve('/data'))).extents[0]!.physical * B;
      spacePos = (await fs.fileMap(await fs.resolve('/space'))).extents[0]!.physical * B;
      dev.events.length = 0;
      // The session's flush completes only once the copy has begun writing (if the session
      // waited for its flush before the copy, this flush would wait 3 s and the order below fail).
      dev.holdFlush = (e) => e.op === 'write' && e.pos === spacePos;
      await movedata(fs, '/data', '/space', { from: 0, len: N * B });
      events = dev.events.slice();
    } finally {
      await fs.close();
    }
    const firstWrite = events.findIndex((e) => e.op === 'write');
    expect(events[firstWrite], 'the session begins with the superblock').toMatchObject({ op: 'write', pos: SUPERBLOCK_OFFSET, len: SUPERBLOCK_SIZE });
    expect(events[firstWrite + 1]).toEqual({ op: 'flush' });
    const readsData = (e: Event) => e.op === 'read' && e.pos <= dataPos && dataPos < e.pos + e.len;
    expect(events.slice(0, firstWrite).some(readsData), "the copy's source is read before the session's first write").toBe(true);
    const jsbWrite = events.findIndex((e) => e.op === 'write' && e.pos === jsbPos);
    expect(jsbWrite).toBeGreaterThan(firstWrite);
    expect(events.slice(0, jsbWrite).filter((e) => e.op === 'flush').length, 'flushes before the journal superblock').toBe(1);
    const logFlush = events.findIndex((e, i) => i > firstWrite + 1 && e.op === 'flush');
    expect(jsbWrite, 'the journal superblock is in the log epoch').toBeLessThan(logFlush);
    const sessionFlushed = events.findIndex((e) => e.op === 'flushed');
    const copyWrite = events.findIndex((e) => e.op === 'write' && e.pos === spacePos);
    expect(copyWrite, 'the copy is written while the session flush runs').toBeGreaterThan(firstWrite + 1);
    expect(copyWrite, 'the copy is written while the session flush runs').toBeLessThan(sessionFlushed);
    expect(jsbWrite, 'the journal superblock only once needs_recovery is durable').toBeGreaterThan(sessionFlushed);
    expectE2fsckClean(img, 'after movedata');
    expect(sameBytes(new Uint8Array(debugfsDump(img, '/data')), data)).toBe(true);
  });

  it('no crash point of a session (start, commit, close) leaves a live log without needs_recovery (what e2fsck -p refuses to preen)', async () => {
    // e2fsck's PR_0_JOURNAL_RUN ("needs_recovery flag is clear, but journal has data. Run journal
    // anyway") has no PR_PREEN_OK: -p exits 4, a boot-time check halts. So needs_recovery is durable
    // before the journal superblock makes the log live (session start), and the emptied journal
    // superblock before needs_recovery is cleared (close): neither pair may share one flush.
    const data = pattern(N * B, 7);
    const img = makeImage('ss-live', { data, space: pattern(N * B, 8) }, { sizeMiB: 8 });
    const base = new Uint8Array(nodeFs.readFileSync(img));
    const rec = new RecordingDevice(new MemoryDevice(base.slice()));
    const fs = await Filesystem.open(rec, { write: true });
    let jsbPos = 0;
    try {
      jsbPos = physicalOf(internals(fs).journal!.map)(0) * B;
      await movedata(fs, '/data', '/space', { from: 0, len: N * B });
    } finally {
      await fs.close();
    }
    const points = crashPoints(rec.log, { random: new Prng('session-live-log'), subsetsPerEpoch: 8 });
    let live = 0, recovering = 0;
    for (const p of points) {
      const image = materialise(base, rec.log, p);
      const s = parseSuperblock(image.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE), { verifyChecksum: false });
      const jsb = parseJournalSuperblock(image.subarray(jsbPos, jsbPos + B));
      const recover = (s.s_feature_incompat & INCOMPAT.RECOVER) !== 0;
      if (recover) recovering++;
      if (jsb.s_start === 0) continue;
      live++;
      expect(recover, `crash point ${p.writes}/${[...(p.lose ?? [])].join(',')}: live log (s_start ${jsb.s_start}) without needs_recovery`).toBe(true);
    }
    expect(live, 'crash points with a live log').toBeGreaterThan(0);
    expect(recovering, 'crash points with needs_recovery set').toBeGreaterThan(live);
  });

  it('a log the kernel discards: emptied before needs_recovery, the new log past its tids; no crash point replays it', async () => {
    const data = pattern(N * B, 3);
    const img = makeImage('ss-stale', { data, space: pattern(N * B, 4), f: pattern(N * B, 5), g: pattern(N * B, 6) }, { sizeMiB: 8 });
    // A committed, not yet checkpointed transaction (lazy checkpoint): the image as it stands
    // before close has a live log that starts at s_first.
    let stale: Uint8Array;
    {
      const fs = await Filesystem.open(await FileDevice.open(img, { write: true }), { write: true, closeDevice: true });
      try {
        await movedata(fs, '/f', '/g', { from: 0, len: N * B });
        stale = new Uint8Array(nodeFs.readFileSync(img));
      } finally {
        await fs.close();
      }
    }
    // …whose needs_recovery is then cleared: a log the kernel (and e2fsck's journal check) discards.
    const sb = parseSuperblock(stale.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE));
    expect(sb.s_feature_incompat & INCOMPAT.RECOVER).toBeTruthy();
    sb.s_feature_incompat &= ~INCOMPAT.RECOVER;
    stale.set(serializeSuperblock(sb), SUPERBLOCK_OFFSET);

    const rec = new RecordingDevice(new MemoryDevice(stale.slice()));
    const fs = await Filesystem.open(rec, { write: true });
    let physical: (n: number) => number;
    try {
      physical = physicalOf(internals(fs).journal!.map);
      await movedata(fs, '/data', '/space', { from: 0, len: N * B });
    } finally {
      await fs.close();
    }
    const journalOf = (image: Uint8Array) => journalOnDevice(new MemoryDevice(image), { blockSize: B, physical });
    const old = await recoverJournal(journalOf(stale));
    expect(old.transactions, 'the stale log holds a committed transaction').toBeGreaterThan(0);
    const staleTids = new Set(Array.from({ length: old.transactions }, (_, i) => (old.firstTid + i) >>> 0));

    // Every prefix, plus sets of un-flushed writes lost; and, explicitly, each epoch with all
    // but the journal superblock lost (the new log's start durable, its blocks not).
    const jsbPos = physical(0) * B;
    // Per write record: its position and the first write of its epoch (the writes since the last flush).
    const wpos: number[] = [], epochOf: number[] = [];
    let epoch = 0;
    for (const r of rec.log) {
      if (r.kind === 'flush') epoch = wpos.length;
      else {
        epochOf.push(epoch);
        wpos.push(r.position);
      }
    }
    // (up to the first commit's end: the 4th flush — emptied jsb, superblock, log, commit block)
    const flushAt = rec.log.flatMap((r, i) => (r.kind === 'flush' ? [rec.log.slice(0, i).filter((x) => x.kind === 'write').length] : []));
    expect(flushAt.length).toBeGreaterThanOrEqual(4);
    const points: CrashPoint[] = crashPoints(rec.log, { random: new Prng('session-start'), subsetsPerEpoch: 6 }).filter((p) => p.writes <= flushAt[3]!);
    for (let k = 0; k < wpos.length; k++) {
      if (wpos[k] !== jsbPos) continue;
      // the crash right before the epoch's flush, with all its writes but the jsb lost
      let end = k + 1;
      while (end < wpos.length && epochOf[end] === epochOf[k]) end++;
      const lose = new Set<number>();
      for (let j = epochOf[k]!; j < end; j++) if (j !== k) lose.add(j);
      points.push({ writes: end, lose });
    }
    let recovering = 0;
    for (const p of points) {
      const image = materialise(stale, rec.log, p);
      const s = parseSuperblock(image.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE), { verifyChecksum: false });
      if (!(s.s_feature_incompat & INCOMPAT.RECOVER)) continue; // (the kernel and e2fsck discard the log)
      recovering++;
      const jsb = parseJournalSuperblock(image.subarray(jsbPos, jsbPos + B));
      if (jsb.s_start === 0) continue;
      const r = await recoverJournal(journalOf(image));
      for (let i = 0; i < r.transactions; i++)
        expect(staleTids.has((r.firstTid + i) >>> 0), `crash point ${p.writes}/${[...(p.lose ?? [])].join(',')}: recovery replays stale transaction ${(r.firstTid + i) >>> 0}`).toBe(false);
    }
    expect(recovering, 'crash points with needs_recovery set').toBeGreaterThan(0);

    const out = `${img}.final`;
    nodeFs.writeFileSync(out, materialise(stale, rec.log, { writes: wpos.length }));
    try {
      expectE2fsckClean(out, 'after the session over a discarded log');
      expect(sameBytes(new Uint8Array(debugfsDump(out, '/data')), data)).toBe(true);
    } finally {
      nodeFs.rmSync(out, { force: true });
    }
  });
});
