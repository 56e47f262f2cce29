/**
 * "Safe while in use": one open Filesystem, many concurrent async callers.
 *
 * A model holds every file's bytes and which of its logical blocks are
 * allocated. Concurrent batches (Promise.all of interleaved pread, pwrite,
 * truncate, allocate, multi-step movedata and the exchangeData protocol)
 * run with fixed seeds; the filesystem serialises them, and the order in
 * which their promises resolve is the order in which they took effect, so the
 * model replays them in that order and checks every result (a read sees
 * exactly the model's bytes at that point, an allocate fails with EEXIST
 * exactly when the model has a block there, exchangeData fails with ESTALE
 * exactly when something touched the data file between startExchange and the
 * exchange). A sequential property test mixes the same calls (plus
 * movedata from hole-y files: punch) and checks after every step. e2fsck -fn
 * must be clean every few steps and at the end, where debugfs and the kernel
 * must also read every file exactly as the model says.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import { AsyncLocalStorage } from 'node:async_hooks';
import { Filesystem } from '../../lib/node.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { memoryDeviceFromFile } from '../../lib/io/file-device.js';
import { Prng } from '../../lib/io/prng.js';
import { isExt4Error } from '../../lib/errors.js';
import { allocate, ALLOC_CONTIGUOUS, ALLOC_FIXED_LEN } from '../../lib/ops/allocate.js';
import { exchangeData, movedata, startExchange } from '../../lib/ops/movedata.js';
import { openFile } from '../../lib/ops/file.js';
import { cleanupImages, expectClean, HAVE_E2FSPROGS, makeImage, pattern, sameBytes, scratchPath, verify } from './helpers.js';

afterEach(() => cleanupImages());

const B = 4096;
const MAXB = 48; // files stay below 48 blocks

interface FileModel {
  content: Uint8Array;
  alloc: Set<number>;
}
type Model = Map<string, FileModel>;

function cloneModel(m: Model): Model {
  return new Map([...m].map(([p, f]) => [p, { content: f.content.slice(), alloc: new Set(f.alloc) }]));
}

function mPwrite(m: Model, p: string, data: Uint8Array, pos: number): void {
  const f = m.get(p)!;
  const size = Math.max(f.content.length, pos + data.length);
  const c = new Uint8Array(size);
  c.set(f.content);
  c.set(data, pos);
  f.content = c;
  for (let b = Math.floor(pos / B); b < Math.ceil((pos + data.length) / B); b++) f.alloc.add(b);
}
function mTruncate(m: Model, p: string, size: number): void {
  const f = m.get(p)!;
  const c = new Uint8Array(size);
  c.set(f.content.subarray(0, Math.min(size, f.content.length)));
  f.content = c;
  const keep = Math.ceil(size / B);
  for (const b of [...f.alloc]) if (b >= keep) f.alloc.delete(b);
}
/** EEXIST if any block of the range is allocated, else allocate it all (FIXED_LEN) and grow the size. */
function mAllocate(m: Model, p: string, lb: number, n: number): 'EEXIST' | number {
  const f = m.get(p)!;
  for (let b = lb; b < lb + n; b++) if (f.alloc.has(b)) return 'EEXIST';
  for (let b = lb; b < lb + n; b++) f.alloc.add(b);
  if ((lb + n) * B > f.content.length) mTruncateContentOnly(f, (lb + n) * B);
  return n * B;
}
function mTruncateContentOnly(f: FileModel, size: number): void {
  const c = new Uint8Array(size);
  c.set(f.content.subarray(0, Math.min(size, f.content.length)));
  f.content = c;
}
/** semantics.md §1 per block: space's block replaces data's (data's bytes kept), a space hole punches data; space is holed. */
function mMove(m: Model, data: string, space: string, lb: number, n: number): 'EINVAL' | 0 {
  const d = m.get(data)!, s = m.get(space)!;
  if ((lb + n) * B > Math.ceil(d.content.length / B) * B || data === space) return 'EINVAL';
  for (let b = lb; b < lb + n; b++) {
    if (s.alloc.has(b)) d.alloc.add(b);
    else {
      d.alloc.delete(b);
      d.content.fill(0, b * B, Math.min(d.content.length, (b + 1) * B));
    }
    s.alloc.delete(b);
    s.content.fill(0, b * B, Math.min(s.content.length, (b + 1) * B));
  }
  return 0;
}

async function checkFs(f: Filesystem, m: Model, what: string): Promise<void> {
  for (const [p, want] of m) {
    const ino = await f.resolve(p);
    const got = await f.read(ino, 0, ino.size);
    expect(ino.size, `${what}: size of ${p}`).toBe(want.content.length);
    expect(sameBytes(got, want.content), `${what}: content of ${p}`).toBe(true);
    const alloc = new Set<number>();
    for (const e of (await f.fileMap(ino)).extents) for (let i = 0; i < e.length; i++) alloc.add(e.logical + i);
    expect([...alloc].sort((a, b) => a - b), `${what}: allocated blocks of ${p}`).toEqual([...want.alloc].sort((a, b) => a - b));
  }
}

/** Close, run e2fsck -fn on the bytes, reopen (the device is the same MemoryDevice). */
async function fsckCycle(f: Filesystem, mem: MemoryDevice, what: string): Promise<Filesystem> {
  await f.close();
  const file = scratchPath('fsck.img');
  nodefs.writeFileSync(file, mem.data);
  expectClean(file, what);
  nodefs.rmSync(file, { force: true });
  return Filesystem.open(mem, { write: true });
}

async function finalOracles(f: Filesystem, mem: MemoryDevice, m: Model, what: string): Promise<void> {
  await f.close();
  const file = scratchPath('final.img');
  nodefs.writeFileSync(file, mem.data);
  await verify(file, Object.fromEntries([...m].map(([p, fm]) => [p, { content: fm.content }])), what);
}

/** An image with data files f0..f3 (some with holes), space files s0..s3 and an empty e0; loaded into memory. */
async function setup(seed: number): Promise<{ mem: MemoryDevice; model: Model }> {
  const rng = new Prng(seed);
  const files: Record<string, Uint8Array> = {};
  for (let k = 0; k < 4; k++) {
    const n = 8 + rng.int(24);
    const c = pattern(n * B - rng.int(B), seed * 10 + k);
    if (k % 2) c.fill(0, 2 * B, 5 * B); // a hole
    files[`f${k}`] = c;
    files[`s${k}`] = new Uint8Array(0);
  }
  files.e0 = new Uint8Array(0);
  const img = makeImage(`online${seed}`, files, { sizeMiB: 48 });
  const mem = await memoryDeviceFromFile(img);
  nodefs.rmSync(img, { force: true });
  const f = await Filesystem.open(mem);
  const model: Model = new Map();
  try {
    for (const p of Object.keys(files)) {
      const ino = await f.resolve(`/${p}`);
      const alloc = new Set<number>();
      for (const e of (await f.fileMap(ino)).extents) for (let i = 0; i < e.length; i++) alloc.add(e.logical + i);
      model.set(`/${p}`, { content: await f.read(ino, 0, ino.size), alloc });
    }
  } finally {
    await f.close();
  }
  return { mem, model };
}

const DATA = ['/f0', '/f1', '/f2', '/f3'];
const SPACE = ['/s0', '/s1', '/s2', '/s3'];

// ------------------------------------------------------------------------------------------ concurrent

type Event =
  | { kind: 'pwrite'; file: string; pos: number; data: Uint8Array }
  | { kind: 'pread'; file: string; pos: number; len: number; got: Uint8Array }
  | { kind: 'truncate'; file: string; size: number }
  | { kind: 'allocate'; file: string; lb: number; n: number; result: string | number }
  | { kind: 'move'; data: string; space: string; lb: number; n: number; result: string | number }
  | { kind: 'token'; file: string; id: number }
  | { kind: 'exchange'; data: string; space: string; lb: number; n: number; id: number; result: string | number };

/**
 * Which call is running: every library call is issued inside als.run(id), and
 * the filesystem's two serialisation points (transact, exclusive) are wrapped
 * to log that id when the serialised section ends — the exact order in which
 * the calls took effect (a multi-step movedata logs once per step).
 */
const als = new AsyncLocalStorage<number>();
function instrument(f: Filesystem, order: number[]): Filesystem {
  const transact = f.transact.bind(f);
  const exclusive = f.exclusive.bind(f);
  f.transact = <T>(fn: Parameters<Filesystem['transact']>[0]) => {
    const id = als.getStore();
    return transact(async (tx) => {
      try {
        return (await fn(tx)) as T;
      } finally {
        if (id !== undefined) order.push(id);
      }
    });
  };
  f.exclusive = <T>(fn: () => Promise<T>) => {
    const id = als.getStore();
    return exclusive(async () => {
      try {
        return await fn();
      } finally {
        if (id !== undefined) order.push(id);
      }
    });
  };
  return f;
}

function codeOrValue(p: Promise<number | void>): Promise<string | number> {
  return p.then(
    (v) => v ?? 0, // movedata/exchangeData resolve to void: 0 as the model says
    (e: unknown) => {
      if (isExt4Error(e)) return e.code;
      throw e;
    },
  );
}

describe.skipIf(!HAVE_E2FSPROGS)('safe while in use', () => {
  for (const seed of [11, 12, 13]) {
    it(`seed ${seed}: 8 rounds of 12+ concurrent calls on one Filesystem — no lost write, reads and errors as the model says, e2fsck clean`, async () => {
      const { mem, model } = await setup(seed);
      const rng = new Prng(seed * 7919);
      const order: number[] = [];
      let f = instrument(await Filesystem.open(mem, { write: true }), order);
      let stale = 0, exchanged = 0, moved = 0, eexist = 0;
      try {
        for (let round = 0; round < 8; round++) {
          // --- plan: roles per file
          const data = [...DATA].sort(() => rng.next() - 0.5);
          const spaces = [...SPACE].sort(() => rng.next() - 0.5);
          const moveData = data[0]!, moveSpace = spaces[0]!;
          const exData = data[1]!, exSpace = spaces[1]!;
          const free = data.slice(2);
          // movedata range inside moveData's size, made fully allocated in moveSpace beforehand
          const dBlocks = Math.ceil(model.get(moveData)!.content.length / B);
          const mlb = rng.int(Math.max(1, dBlocks - 1));
          const mn = 1 + rng.int(Math.min(8, dBlocks - mlb));
          const sm = model.get(moveSpace)!;
          for (let b = mlb; b < mlb + mn; b++) {
            if (sm.alloc.has(b)) continue;
            let e = b;
            while (e < mlb + mn && !sm.alloc.has(e)) e++;
            expect(await allocate(f, moveSpace, { offset: b * B, len: (e - b) * B, flags: ALLOC_FIXED_LEN })).toBe((e - b) * B);
            mAllocate(model, moveSpace, b, e - b);
            b = e - 1;
          }
          const xBlocks = Math.ceil(model.get(exData)!.content.length / B);
          const xlb = rng.int(Math.max(1, xBlocks - 1));
          const xn = 1 + rng.int(Math.min(6, xBlocks - xlb));

          // --- launch everything without awaiting in between; every call runs under its own id
          const events = new Map<number, Event>();
          const ops: Promise<unknown>[] = [];
          let nextId = 0;
          const track = <T>(call: () => Promise<T>, ev: (v: T) => Event) => {
            const id = nextId++;
            ops.push(als.run(id, call).then((v) => void events.set(id, ev(v))));
          };
          const handles = new Map<string, Awaited<ReturnType<typeof openFile>>>();
          for (const p of [...DATA, ...SPACE]) handles.set(p, await openFile(f, p));
          const h = (p: string) => handles.get(p)!;

          track(() => codeOrValue(movedata(f, moveData, moveSpace, { from: mlb * B, len: mn * B, stepExtents: 1, stepBytes: 2 * B })), (result) => ({ kind: 'move', data: moveData, space: moveSpace, lb: mlb, n: mn, result }));
          const exId = round;
          const idToken = nextId++, idCopyWrite = nextId++, idExchange = nextId++;
          ops.push(
            (async () => {
              const token = await als.run(idToken, () => startExchange(f, exData));
              events.set(idToken, { kind: 'token', file: exData, id: exId });
              const copy = await h(exData).pread(xlb * B, xn * B); // not tracked: its bytes only feed the next write
              const full = new Uint8Array(xn * B);
              full.set(copy);
              await als.run(idCopyWrite, () => h(exSpace).pwrite(full, xlb * B));
              events.set(idCopyWrite, { kind: 'pwrite', file: exSpace, pos: xlb * B, data: full });
              const result = await als.run(idExchange, () => codeOrValue(exchangeData(f, exData, exSpace, { from: xlb * B, len: xn * B, token })));
              events.set(idExchange, { kind: 'exchange', data: exData, space: exSpace, lb: xlb, n: xn, id: exId, result });
            })(),
          );
          const nOther = 12 + rng.int(6);
          for (let k = 0; k < nOther; k++) {
            const r = rng.next();
            // which files each kind may touch this round; in even rounds nothing else touches the
            // exchange's data file (so the exchange must succeed), in odd rounds it may (ESTALE if it did)
            const quiet = round % 2 === 0;
            const writable = quiet ? [moveData, ...free] : data;
            const file = r < 0.35 ? writable[rng.int(writable.length)]! : r < 0.6 ? (quiet ? free : [exData, ...free])[rng.int(quiet ? 2 : 3)]! : free[rng.int(2)]!;
            const kind = r < 0.35 ? 'pwrite' : r < 0.6 ? (rng.chance(0.5) ? 'allocate' : 'pread') : rng.chance(0.5) ? 'truncate' : 'pread';
            if (kind === 'pwrite') {
              const pos = rng.int(MAXB * B - 3 * B);
              const d = pattern(1 + rng.int(3 * B), seed * 1000 + round * 50 + k);
              track(() => h(file).pwrite(d, pos), () => ({ kind: 'pwrite', file, pos, data: d }));
            } else if (kind === 'pread') {
              const pos = rng.int(MAXB * B);
              const len = 1 + rng.int(4 * B);
              track(() => h(file).pread(pos, len), (got) => ({ kind: 'pread', file, pos, len, got }));
            } else if (kind === 'allocate') {
              const lb = rng.int(MAXB - 4), n = 1 + rng.int(3);
              const flags = ALLOC_FIXED_LEN | (rng.chance(0.5) ? ALLOC_CONTIGUOUS : 0);
              track(() => codeOrValue(allocate(f, file, { offset: lb * B, len: n * B, flags })), (result) => ({ kind: 'allocate', file, lb, n, result }));
            } else {
              const size = rng.int(MAXB * B);
              track(() => h(file).truncate(size), () => ({ kind: 'truncate', file, size }));
            }
          }
          await Promise.all(ops);
          // The order the calls took effect: the position of each id's last serialised section.
          const lastPos = new Map<number, number>();
          order.forEach((id, pos) => lastPos.set(id, pos));
          order.length = 0;
          const sequence = [...events.keys()].sort((a, b) => (lastPos.get(a) ?? -1) - (lastPos.get(b) ?? -1)).map((id) => {
            expect(lastPos.has(id), `call ${id} (${events.get(id)!.kind}) went through the filesystem's queue`).toBe(true);
            return events.get(id)!;
          });

          // --- replay in the order the calls took effect
          const touchedAfter = new Map<number, boolean>(); // exchange id → data touched since its token
          let tokenSeen = false;
          const touch = (p: string) => {
            if (tokenSeen && p === exData) touchedAfter.set(exId, true);
          };
          for (const ev of sequence) {
            switch (ev.kind) {
              case 'pwrite':
                mPwrite(model, ev.file, ev.data, ev.pos);
                touch(ev.file);
                break;
              case 'pread': {
                const c = model.get(ev.file)!.content;
                const want = c.subarray(Math.min(ev.pos, c.length), Math.min(ev.pos + ev.len, c.length));
                expect(sameBytes(ev.got, want), `round ${round}: pread ${ev.file} @${ev.pos}+${ev.len} sees the model`).toBe(true);
                break;
              }
              case 'truncate':
                mTruncate(model, ev.file, ev.size);
                touch(ev.file);
                break;
              case 'allocate': {
                const want = mAllocate(model, ev.file, ev.lb, ev.n);
                expect(ev.result, `round ${round}: allocate ${ev.file} [${ev.lb}, +${ev.n})`).toBe(want);
                if (want === 'EEXIST') eexist++;
                else touch(ev.file);
                break;
              }
              case 'move':
                expect(ev.result).toBe(0);
                expect(mMove(model, ev.data, ev.space, ev.lb, ev.n)).toBe(0);
                touch(ev.data);
                touch(ev.space);
                moved++;
                break;
              case 'token':
                tokenSeen = true;
                break;
              case 'exchange': {
                const wasTouched = touchedAfter.get(ev.id) ?? false;
                expect(ev.result, `round ${round}: exchange (data touched since the token: ${wasTouched})`).toBe(wasTouched ? 'ESTALE' : 0);
                if (ev.result === 0) {
                  expect(mMove(model, ev.data, ev.space, ev.lb, ev.n)).toBe(0);
                  exchanged++;
                } else stale++;
                tokenSeen = false;
                break;
              }
            }
          }
          await checkFs(f, model, `seed ${seed} round ${round}`);
          if (round % 3 === 2) f = instrument(await fsckCycle(f, mem, `seed ${seed} round ${round}`), order);
        }
      } finally {
        await finalOracles(f, mem, model, `seed ${seed} end`);
      }
    });
  }

  it('exchangeData: ESTALE (nothing changes) after a write, truncate or allocate since startExchange; success otherwise', async () => {
    const { mem, model } = await setup(21);
    const f = await Filesystem.open(mem, { write: true });
    try {
      const cases: [string, () => Promise<unknown>][] = [
        ['pwrite', async () => (await openFile(f, '/f0')).pwrite(new Uint8Array([1, 2, 3]), 10)],
        ['truncate to the same size', async () => (await openFile(f, '/f0')).truncate(model.get('/f0')!.content.length)],
        ['allocate', () => allocate(f, '/f0', { offset: 60 * B, len: B })],
        ['nothing', async () => undefined],
      ];
      for (const [what, touchIt] of cases) {
        const token = await startExchange(f, '/f0');
        const copy = await (await openFile(f, '/f0')).pread(0, 2 * B);
        await (await openFile(f, '/s0')).pwrite(copy, 0);
        mPwrite(model, '/s0', copy, 0);
        await touchIt();
        if (what === 'pwrite') mPwrite(model, '/f0', new Uint8Array([1, 2, 3]), 10);
        if (what === 'allocate') mAllocate(model, '/f0', 60, 1);
        const before = { ...f.writeStats };
        const r = await codeOrValue(exchangeData(f, '/f0', '/s0', { from: 0, len: 2 * B, token }));
        if (what === 'nothing') {
          expect(r, what).toBe(0);
          mMove(model, '/f0', '/s0', 0, 2);
        } else {
          expect(r, what).toBe('ESTALE');
          expect(f.writeStats, `${what}: nothing committed`).toEqual(before);
        }
        await checkFs(f, model, `exchange after ${what}`);
      }
    } finally {
      await finalOracles(f, mem, model, 'exchange cases');
    }
  });
});

// ------------------------------------------------------------------------------------------ sequential property

describe.skipIf(!HAVE_E2FSPROGS)('property: random sequences of allocate / movedata / exchange / pwrite / truncate / punch vs the model', () => {
  for (const seed of [101, 102, 103]) {
    it(`seed ${seed}: 70 steps, model checked after every step, e2fsck every 14 steps and at the end`, async () => {
      const { mem, model } = await setup(seed);
      const rng = new Prng(seed);
      let f = await Filesystem.open(mem, { write: true });
      const counts: Record<string, number> = {};
      try {
        for (let step = 0; step < 70; step++) {
          const r = rng.next();
          const all = [...DATA, ...SPACE];
          const before = cloneModel(model);
          let label = '';
          if (r < 0.25) {
            const file = all[rng.int(all.length)]!;
            const pos = rng.int(MAXB * B - 3 * B);
            const d = pattern(1 + rng.int(3 * B), seed * 1000 + step);
            label = `pwrite ${file} @${pos}+${d.length}`;
            await (await openFile(f, file)).pwrite(d, pos);
            mPwrite(model, file, d, pos);
          } else if (r < 0.37) {
            const file = all[rng.int(all.length)]!;
            const size = rng.int(MAXB * B);
            label = `truncate ${file} ${size}`;
            await (await openFile(f, file)).truncate(size);
            mTruncate(model, file, size);
          } else if (r < 0.6) {
            const file = all[rng.int(all.length)]!;
            const lb = rng.int(MAXB - 6), n = 1 + rng.int(6);
            const flags = ALLOC_FIXED_LEN | (rng.chance(0.5) ? ALLOC_CONTIGUOUS : 0);
            label = `allocate ${file} [${lb}, +${n}) flags ${flags}`;
            const got = await codeOrValue(allocate(f, file, { offset: lb * B, len: n * B, flags }));
            expect(got, label).toBe(mAllocate(model, file, lb, n));
          } else if (r < 0.88) {
            // movedata: space from the space files, or e0 (no blocks at all: a punch)
            const data = DATA[rng.int(4)]!;
            const space = rng.chance(0.2) ? '/e0' : SPACE[rng.int(4)]!;
            const size = model.get(data)!.content.length;
            const blocks = Math.max(1, Math.ceil(size / B));
            const lb = rng.int(blocks), n = 1 + rng.int(Math.max(1, Math.min(10, blocks - lb + (rng.chance(0.1) ? 3 : 0))));
            if (!model.has('/e0')) model.set('/e0', { content: new Uint8Array(0), alloc: new Set() });
            label = `movedata ${data} ${space} [${lb}, +${n})`;
            const got = await codeOrValue(movedata(f, data, space, { from: lb * B, len: n * B, stepExtents: 1 + rng.int(3), stepBytes: (1 + rng.int(4)) * B }));
            expect(got, label).toBe(mMove(model, data, space, lb, n));
          } else {
            const data = DATA[rng.int(4)]!, space = SPACE[rng.int(4)]!;
            const blocks = Math.ceil(model.get(data)!.content.length / B);
            if (blocks === 0) continue;
            const lb = rng.int(blocks), n = 1 + rng.int(Math.min(6, blocks - lb));
            label = `exchange ${data} ${space} [${lb}, +${n})`;
            const token = await startExchange(f, data);
            const copy = await (await openFile(f, data)).pread(lb * B, n * B);
            const full = new Uint8Array(n * B);
            full.set(copy);
            await (await openFile(f, space)).pwrite(full, lb * B);
            mPwrite(model, space, full, lb * B);
            expect(await exchangeData(f, data, space, { from: lb * B, len: n * B, token }), label).toBeUndefined();
            expect(mMove(model, data, space, lb, n)).toBe(0);
          }
          counts[label.split(' ')[0]!] = (counts[label.split(' ')[0]!] ?? 0) + 1;
          void before;
          await checkFs(f, model, `seed ${seed} step ${step}: ${label}`);
          if (step % 14 === 13) f = await fsckCycle(f, mem, `seed ${seed} step ${step}: ${label}`);
        }
      } finally {
        await finalOracles(f, mem, model, `property seed ${seed}`);
      }
    });
  }
});

describe.skipIf(!HAVE_E2FSPROGS)('lazy checkpointing and the block cache', () => {
  // Lazy checkpointing keeps committed metadata in journal.pending. When such a block is evicted
  // from the cache and a later read-ahead brings the (stale) on-disk copy back in, readBlock still
  // prefers the pending image; the checkpoint then hands the committed images to the cache
  // (JournalState.onCheckpointed), so the stale copy is never served.
  it('after a checkpoint, a block that cache read-ahead re-read (stale) while it was pending is served as committed', async () => {
    const img = makeImage('stalecache', { a: pattern(B, 1), b: pattern(B, 2) }, { sizeMiB: 64 });
    const f = await Filesystem.open(img, { write: true, cacheBytes: 4 * B });
    try {
      const ino = (await f.resolve('/a')).ino;
      const { block } = await f.inodeLocation(ino);
      await allocate(f, '/a', { offset: B, len: B });
      expect((await f.readInode(ino)).size).toBe(2 * B);
      for (let b = 9000; b < 9010; b++) await f.readBlock(b); // evict the inode-table block from the 4-block cache
      await f.readBlock(block - 2); // a miss whose read-ahead covers it: the on-disk (old) copy enters the cache
      await f.checkpoint();
      expect((await f.readInode(ino)).size, 'the inode as committed').toBe(2 * B);
    } finally {
      await f.close();
    }
  });
});
