import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { linkSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  blockDeviceSizeFromSysfs,
  devMajor,
  devMinor,
  devNumberString,
  findLoopAttachments,
  imageInUse,
  mountedDevices,
  parseMountInfo,
  type SystemRoots,
} from '../../lib/io/in-use.js';
import { FileDevice } from '../../lib/io/file-device.js';
import { rejection, rejectionCode, tempDir } from './helpers.js';

/** A fake /sys + /proc tree under a temp dir. */
class FakeSystem {
  readonly root = tempDir('ext4kit-fakesys-');
  readonly roots: SystemRoots = { sys: join(this.root, 'sys'), proc: join(this.root, 'proc') };
  private mounts: string[] = [];
  constructor() {
    mkdirSync(join(this.roots.sys, 'block'), { recursive: true });
    mkdirSync(join(this.roots.proc, 'self'), { recursive: true });
    this.writeMountinfo();
  }
  /** An attached loop device; backing '' means detached (the kernel's empty file). */
  loop(n: number, backing: string, opts: { holders?: string[]; partitions?: number } = {}): string {
    const dir = join(this.roots.sys, 'block', `loop${n}`);
    mkdirSync(join(dir, 'loop'), { recursive: true });
    mkdirSync(join(dir, 'holders'), { recursive: true });
    writeFileSync(join(dir, 'dev'), `7:${n * 16}\n`);
    if (backing !== '') writeFileSync(join(dir, 'loop', 'backing_file'), `${backing}\n`);
    for (const h of opts.holders ?? []) writeFileSync(join(dir, 'holders', h), '');
    for (let p = 1; p <= (opts.partitions ?? 0); p++) {
      const pd = join(dir, `loop${n}p${p}`);
      mkdirSync(join(pd, 'holders'), { recursive: true });
      writeFileSync(join(pd, 'dev'), `259:${n * 16 + p}\n`);
      writeFileSync(join(pd, 'partition'), `${p}\n`);
    }
    return `7:${n * 16}`;
  }
  mount(devNumber: string, mountPoint: string, source = '/dev/loopX'): void {
    const id = 100 + this.mounts.length;
    this.mounts.push(`${id} 1 ${devNumber} / ${mountPoint.replace(/ /g, '\\040')} rw,relatime shared:${id} - ext4 ${source} rw`);
    this.writeMountinfo();
  }
  private writeMountinfo(): void {
    const base = ['22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw', '25 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw'];
    writeFileSync(join(this.roots.proc, 'self', 'mountinfo'), [...base, ...this.mounts].join('\n') + '\n');
  }
  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

let sys: FakeSystem;
let images: string;
beforeEach(() => {
  sys = new FakeSystem();
  images = tempDir('ext4kit-images-');
});
afterEach(() => {
  sys.cleanup();
  rmSync(images, { recursive: true, force: true });
});

function image(name: string): string {
  const p = join(images, name);
  writeFileSync(p, new Uint8Array(8192));
  return p;
}

describe('dev_t decoding (glibc gnu_dev_major/minor)', () => {
  // glibc gnu_dev_makedev
  const makedev = (major: bigint, minor: bigint) =>
    ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
  it('decodes small and large numbers', () => {
    expect(devMajor(0x0700)).toBe(7);
    expect(devMinor(0x0700)).toBe(0);
    for (const [ma, mi] of [
      [7n, 0n],
      [8n, 17n],
      [259n, 1048575n],
      [4095n, 255n],
      [4096n, 256n],
      [0xfffffn, 0xfffffn],
    ] as const) {
      const d = makedev(ma, mi);
      expect([devMajor(d), devMinor(d)]).toEqual([Number(ma), Number(mi)]);
      expect(devNumberString(d)).toBe(`${ma}:${mi}`);
    }
  });
});

describe('parseMountInfo', () => {
  it('reads the device number, decodes escaped mount points and finds fields after the separator', () => {
    const text =
      '36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n' +
      'garbage line\n' +
      '41 26 7:0 / /tmp/mt rw,relatime - ext4 /dev/loop0 rw\n';
    const e = parseMountInfo(text);
    expect(e).toEqual([
      { devNumber: '98:0', mountPoint: '/mnt/with space', fsType: 'ext3', source: '/dev/root' },
      { devNumber: '7:0', mountPoint: '/tmp/mt', fsType: 'ext4', source: '/dev/loop0' },
    ]);
  });
  it('mountedDevices groups mount points per device and tolerates a missing /proc', async () => {
    sys.mount('7:0', '/a');
    sys.mount('7:0', '/b');
    const m = await mountedDevices(sys.roots);
    expect(m.get('7:0')).toEqual(['/a', '/b']);
    expect((await mountedDevices({ sys: '/nonexistent', proc: '/nonexistent' })).size).toBe(0);
  });
});

describe('imageInUse with fake /sys and /proc', () => {
  it('not attached → not in use', async () => {
    const img = image('a.img');
    sys.loop(0, join(images, 'other.img'));
    sys.loop(1, ''); // detached loop device
    const r = await imageInUse(img, sys.roots);
    expect(r).toEqual({ inUse: false, attachments: [] });
  });

  it('attached but not mounted → reported, but not in use (documented choice)', async () => {
    const img = image('a.img');
    sys.loop(3, img);
    const r = await imageInUse(img, sys.roots);
    expect(r.inUse).toBe(false);
    expect(r.attachments).toEqual([{ loop: 'loop3', devNumber: '7:48', backingFile: img, mountPoints: [], holders: [] }]);
  });

  it('attached and mounted → in use, naming the loop device and mount point', async () => {
    const img = image('a.img');
    const dev = sys.loop(2, img);
    sys.mount(dev, '/mnt/x');
    const r = await imageInUse(img, sys.roots);
    expect(r.inUse).toBe(true);
    expect(r.reason).toBe('backs /dev/loop2, mounted on /mnt/x');
  });

  it('another loop device mounted does not count', async () => {
    const img = image('a.img');
    sys.loop(0, img);
    const other = sys.loop(1, image('b.img'));
    sys.mount(other, '/mnt/b');
    expect((await imageInUse(img, sys.roots)).inUse).toBe(false);
    expect((await imageInUse(join(images, 'b.img'), sys.roots)).inUse).toBe(true);
  });

  it('compares by device+inode: a hard link or a different spelling of the path matches', async () => {
    const img = image('a.img');
    const hard = join(images, 'hardlink.img');
    linkSync(img, hard);
    const dev = sys.loop(4, hard);
    sys.mount(dev, '/mnt/h');
    expect((await imageInUse(img, sys.roots)).inUse).toBe(true);
    const dotted = join(images, '.', 'sub', '..', 'a.img');
    mkdirSync(join(images, 'sub'));
    expect((await imageInUse(dotted, sys.roots)).inUse).toBe(true);
  });

  it('a different file at the recorded path (image replaced) does not match by inode', async () => {
    const img = image('a.img');
    const dev = sys.loop(0, img);
    sys.mount(dev, '/mnt/a');
    // Move the file away and put a new file at the path the (fake, frozen)
    // backing_file names: the moved file's inode differs, so no match.
    renameSync(img, join(images, 'moved.img'));
    image('a.img');
    expect((await imageInUse(join(images, 'moved.img'), sys.roots)).inUse).toBe(false);
  });

  it('"(deleted)" suffix is understood', async () => {
    const img = image('a.img');
    const dev = sys.loop(0, `${img} (deleted)`);
    sys.mount(dev, '/mnt/d');
    expect((await imageInUse(img, sys.roots)).inUse).toBe(true);
  });

  it('a mounted partition of the loop device, or a holder (dm), makes it in use', async () => {
    const img = image('a.img');
    sys.loop(5, img, { partitions: 2 });
    expect((await imageInUse(img, sys.roots)).inUse).toBe(false);
    sys.mount('259:82', '/mnt/p2');
    const r = await imageInUse(img, sys.roots);
    expect(r.inUse).toBe(true);
    expect(r.reason).toContain('/mnt/p2');

    const img2 = image('b.img');
    sys.loop(6, img2, { holders: ['dm-0'] });
    const r2 = await imageInUse(img2, sys.roots);
    expect(r2.inUse).toBe(true);
    expect(r2.reason).toBe('backs /dev/loop6, held by dm-0');
  });

  it('several loop devices on one file are all listed', async () => {
    const img = image('a.img');
    sys.loop(0, img);
    sys.loop(10, img);
    sys.loop(2, img);
    const a = await findLoopAttachments(img, sys.roots);
    expect(a.map((x) => x.loop)).toEqual(['loop0', 'loop2', 'loop10']);
  });

  it('missing /sys → nothing attached', async () => {
    const img = image('a.img');
    expect(await findLoopAttachments(img, { sys: '/nonexistent-sys', proc: sys.roots.proc })).toEqual([]);
  });
});

describe('FileDevice uses the detector', () => {
  it('opening a mounted image for writing → EBUSY; read-only or exclusive:false is allowed', async () => {
    const img = image('a.img');
    const dev = sys.loop(0, img);
    sys.mount(dev, '/mnt/busy');
    const e = await rejection(FileDevice.open(img, { write: true, roots: sys.roots }));
    expect(e.code).toBe('EBUSY');
    expect(e.message).toContain('/dev/loop0');
    expect(e.message).toContain('/mnt/busy');
    const ro = await FileDevice.open(img, { roots: sys.roots });
    await ro.close();
    const forced = await FileDevice.open(img, { write: true, exclusive: false, roots: sys.roots });
    await forced.close();
    expect(await rejectionCode(FileDevice.open(img, { exclusive: true, roots: sys.roots }))).toBe('EBUSY');
  });

  it('attached but unmounted image opens for writing', async () => {
    const img = image('a.img');
    sys.loop(0, img);
    const d = await FileDevice.open(img, { write: true, roots: sys.roots });
    expect(d.readOnly).toBe(false);
    await d.close();
  });
});

describe('blockDeviceSizeFromSysfs', () => {
  it('reads 512-byte sectors for the major:minor of rdev', async () => {
    const d = join(sys.roots.sys, 'dev', 'block', '259:1048575');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'size'), '2097152\n');
    const rdev = (259n << 8n) | (0xffn) | ((1048575n & ~0xffn) << 12n);
    expect(await blockDeviceSizeFromSysfs(rdev, sys.roots)).toBe(2097152 * 512);
    expect(await blockDeviceSizeFromSysfs(0x0801, sys.roots)).toBeUndefined();
  });
});

describe('errors', () => {
  it('a nonexistent image path → ENOENT Ext4Error', async () => {
    expect(await rejectionCode(imageInUse(join(images, 'missing.img'), sys.roots))).toBe('ENOENT');
  });
});
