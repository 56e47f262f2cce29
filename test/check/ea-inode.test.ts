/**
 * check on ea_inode images (xattr values in EA inodes) against e2fsck -fn: clean where e2fsck is
 * clean — values the kernel wrote (setfattr through a loop mount: one 20,000-byte value on two
 * files, shared through one EA inode with refcount 2; an EA-inode value named from an xattr block
 * two files share) and values ext4kit wrote (setXattr) — and, after debugfs damage (the EA inode's
 * refcount, the owner's i_blocks, the EA_INODE flag, the stored value hash), the problems e2fsck
 * reports: pass 1 check_large_ea_inode and the ea quota in i_blocks, pass 4 check_ea_inode.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { copyFileSync } from 'node:fs';
import { Filesystem } from '../../lib/node.js';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { checkFilesystem, type CheckReport } from '../../lib/ops/check.js';
import { getXattr, setXattr } from '../../lib/ops/attrs.js';
import { writeFile } from '../../lib/ops/write-file.js';
import { parseInodeXattrs, parseXattrBlock } from '../../lib/ext4/xattr.js';
import { debugfs, e2fsckClean, expectE2fsckClean, mkfs, oracleGate, run, withLoopMount } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, pattern } from '../ops/helpers.js';

const BIG = pattern(20_000, 3); // on /a and /b: one EA inode, refcount 2
const S0 = new Uint8Array(64).fill(0x73), S1 = new Uint8Array(64).fill(0x74); // fill /d's and /e's inode bodies…
const MID = pattern(2_048, 4); // …so this EA-inode reference lands in the xattr block they share
const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString('hex')}`;

async function check(img: string): Promise<CheckReport> {
  const fs = await Filesystem.open(img);
  try {
    return await checkFilesystem(fs);
  } finally {
    await fs.close();
  }
}

/** Where the values live: the owners' inode numbers, the EA inodes, and whether /d's one is named from its xattr block. */
async function layout(img: string) {
  const fs: CoreFilesystem = await Filesystem.open(img);
  try {
    const entries = async (p: string) => {
      const i = await fs.resolve(p);
      const body = parseInodeXattrs(i.raw, i.extraIsize, i.ino);
      const block = i.fileAcl ? parseXattrBlock(await fs.readBlock(i.fileAcl), i.fileAcl, { fsSeed: null, verify: false }) : [];
      return { ino: i.ino, body, block, fileAcl: i.fileAcl };
    };
    const a = await entries('/a'), b = await entries('/b'), d = await entries('/d'), e = await entries('/e');
    const big = a.body.find((x) => x.name === 'user.big')!.valueInode;
    const mid = [...d.body, ...d.block].find((x) => x.name === 'user.mid')!.valueInode;
    // the kernel's values read back through ext4kit
    expect(Buffer.from(await getXattr(fs, '/b', 'user.big')).equals(Buffer.from(BIG))).toBe(true);
    expect(Buffer.from(await getXattr(fs, '/e', 'user.mid')).equals(Buffer.from(MID))).toBe(true);
    // references to the EA inode of user.mid: one per inode body or distinct xattr block naming it
    const areas = new Set<string>();
    for (const x of [d, e]) {
      if (x.body.some((y) => y.valueInode === mid)) areas.add(`inode ${x.ino}`);
      if (x.block.some((y) => y.valueInode === mid)) areas.add(`block ${x.fileAcl}`);
    }
    return { a: a.ino, b: b.ino, d: d.ino, big, mid, midRefs: areas.size, bigShared: b.body.some((x) => x.valueInode === big), midInBlock: d.block.some((x) => x.valueInode === mid), blockShared: d.fileAcl !== 0 && d.fileAcl === e.fileAcl };
  } finally {
    await fs.close();
  }
}

/** A copy of `img` changed by one debugfs set_inode_field; its e2fsck -fn problems and check's. */
async function damaged(img: string, name: string, cmd: string) {
  const copy = tmpPath(`ea-inode-${name}.img`);
  copyFileSync(img, copy);
  debugfs(copy, [cmd], { write: true });
  const e = e2fsckClean(copy);
  const r = await check(copy);
  return { e2fsck: e.problems.join('\n'), check: r.problems.map((p) => `pass ${p.pass}: ${p.structure}: ${p.message}`).join('\n'), ok: r.ok, e2fsckOk: e.ok };
}

type Layout = Awaited<ReturnType<typeof layout>>;

/** Damage kinds: what e2fsck -fn says and what check must say. */
const DAMAGE: { name: string; cmd: (l: Layout) => string; e2fsck: (l: Layout) => RegExp[]; check: (l: Layout) => RegExp[] }[] = [
  {
    name: 'refcount-low',
    cmd: (l) => `sif <${l.big}> version 1`,
    e2fsck: (l) => [new RegExp(`Extended attribute inode ${l.big} ref count is 1, should be 2`)],
    check: (l) => [new RegExp(`pass 4: inode ${l.big}: extended attribute inode ${l.big} ref count is 1, should be 2`)],
  },
  {
    name: 'refcount-high',
    cmd: (l) => `sif <${l.mid}> version 5`,
    e2fsck: (l) => [new RegExp(`Extended attribute inode ${l.mid} ref count is 5, should be ${l.midRefs}`)],
    check: (l) => [new RegExp(`pass 4: inode ${l.mid}: extended attribute inode ${l.mid} ref count is 5, should be ${l.midRefs}`)],
  },
  {
    name: 'owner-iblocks',
    cmd: () => 'sif /a blocks 2',
    e2fsck: (l) => [new RegExp(`Inode ${l.a}, i_blocks is 2, should be 42`)],
    check: (l) => [new RegExp(`pass 1: inode ${l.a}: i_blocks is 2 sectors, the inode owns 21 block`)],
  },
  {
    name: 'block-owner-iblocks',
    cmd: () => 'sif /d blocks 6',
    e2fsck: (l) => [new RegExp(`Inode ${l.d}, i_blocks is 6, should be 8`)],
    check: (l) => [new RegExp(`pass 1: inode ${l.d}: i_blocks is 6 sectors, the inode owns 4 block`)],
  },
  {
    name: 'no-ea-flag',
    cmd: (l) => `sif <${l.big}> flags 0x80000`,
    e2fsck: (l) => [new RegExp(`EA inode ${l.big} for parent inode ${l.a} missing EA_INODE flag`), new RegExp(`Inode ${l.b}, i_blocks is 42, should be 2`), new RegExp(`Unattached inode ${l.big}`)],
    check: (l) => [new RegExp(`pass 1: inode ${l.a}: extended attribute user.big: EA inode ${l.big} missing EA_INODE flag`), new RegExp(`pass 1: inode ${l.b}: i_blocks is 42 sectors, the inode owns 1 block`), new RegExp(`pass 3: inode ${l.big}: in use but not reachable`)],
  },
  {
    name: 'block-no-ea-flag',
    cmd: (l) => `sif <${l.mid}> flags 0x80000`,
    e2fsck: (l) => [new RegExp(`EA inode ${l.mid} for parent inode ${l.d} missing EA_INODE flag`), new RegExp(`Unattached inode ${l.mid}`)],
    check: (l) => [new RegExp(`pass 1: xattr block: extended attribute user.mid: EA inode ${l.mid} missing EA_INODE flag`), new RegExp(`pass 3: inode ${l.mid}: in use but not reachable`)],
  },
  {
    name: 'value-hash',
    cmd: (l) => `sif <${l.big}> atime 5`,
    e2fsck: (l) => [new RegExp(`Extended attribute in inode ${l.a} has a hash \\(\\d+\\) which is invalid`), new RegExp(`Inode ${l.a}, i_blocks is 42, should be 2`)],
    check: (l) => [new RegExp(`pass 1: inode ${l.a}: extended attribute user.big: has a hash \\(\\d+\\) which is invalid`), new RegExp(`pass 1: inode ${l.a}: i_blocks is 42 sectors, the inode owns 1 block`)],
  },
];

/** 1 KiB blocks, 256-byte inodes, metadata_csum (debugfs reseals what it changes). */
function emptyImage(name: string): string {
  const img = tmpPath(`ea-inode-${name}.img`);
  mkfs('ext4', img, 4 * 1024 * 1024, ['-b', '1024', '-I', '256', '-N', '64', '-O', 'ea_inode']);
  return img;
}

/** `blockShared`: /d and /e share one xattr block (the kernel's mbcache does that; ext4kit gives each its own). */
function suite(title: string, make: () => Promise<string>, skip: string | null, blockShared: boolean) {
  describe.skipIf(oracleGate(skip) !== null)(title, () => {
    let img = '';
    let l: Layout;
    beforeAll(async () => {
      img = await make();
      expectE2fsckClean(img, title);
      l = await layout(img);
      expect({ bigShared: l.bigShared, midInBlock: l.midInBlock, blockShared: l.blockShared }, JSON.stringify(l)).toEqual({ bigShared: true, midInBlock: true, blockShared });
    }, 60_000);

    it('clean: check agrees with e2fsck -fn', async () => {
      expect((await check(img)).problems).toEqual([]);
    });

    for (const d of DAMAGE)
      it(`damage ${d.name}: check reports what e2fsck reports`, async () => {
        const r = await damaged(img, `${title.split(' ')[0]}-${d.name}`, d.cmd(l));
        expect(r.e2fsckOk).toBe(false);
        for (const re of d.e2fsck(l)) expect(r.e2fsck).toMatch(re);
        expect(r.ok).toBe(false);
        for (const re of d.check(l)) expect(r.check).toMatch(re);
      });
  });
}

suite(
  'kernel-written EA inodes (setfattr through a loop mount)',
  async () => {
    const img = emptyImage('kernel');
    await withLoopMount(img, (mp) => {
      for (const f of ['a', 'b', 'd', 'e']) run('sh', ['-c', `printf abc > ${mp}/${f}`]);
      for (const f of ['a', 'b']) run('setfattr', ['-n', 'user.big', '-v', hex(BIG), `${mp}/${f}`]);
      for (const f of ['d', 'e'])
        for (const [n, v] of [['user.s0', S0], ['user.s1', S1], ['user.mid', MID]] as const) run('setfattr', ['-n', n, '-v', hex(v), `${mp}/${f}`]);
    });
    return img;
  },
  HAVE_E2FSPROGS ? LOOP_SKIP : 'e2fsprogs missing',
  true,
);

suite(
  'ext4kit-written EA inodes (setXattr)',
  async () => {
    const img = emptyImage('ext4kit');
    const fs = await Filesystem.open(img, { write: true, now: { sec: 1_760_000_000, nsec: 0 } });
    try {
      for (const f of ['/a', '/b', '/d', '/e']) await writeFile(fs, f, new TextEncoder().encode('abc'));
      for (const f of ['/a', '/b']) await setXattr(fs, f, 'user.big', BIG);
      for (const f of ['/d', '/e']) for (const [n, v] of [['user.s0', S0], ['user.s1', S1], ['user.mid', MID]] as const) await setXattr(fs, f, n, v);
    } finally {
      await fs.close();
    }
    // the kernel reads the values ext4kit wrote
    if (CAN_MOUNT)
      await withLoopMount(
        img,
        (mp) => {
          const py = 'import os,sys; print(os.getxattr(sys.argv[1], "user.big").hex(), os.getxattr(sys.argv[2], "user.mid").hex())';
          expect(run('python3', ['-c', py, `${mp}/b`, `${mp}/e`]).stdout.trim()).toBe(`${hex(BIG).slice(2)} ${hex(MID).slice(2)}`);
        },
        { readOnly: true },
      );
    return img;
  },
  HAVE_E2FSPROGS ? null : 'e2fsprogs missing',
  false,
);
