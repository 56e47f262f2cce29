/** Unit tests of the CLI helpers: backpressure, mode strings, times, escaping, error text. */
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { describeError, escapeName, formatTime, modeString, pipeChunks, table } from '../../lib/cli/util.js';
import { Ext4Error } from '../../lib/errors.js';
import { compareBytes, decodeRdev, fsStateName, normalizePath } from '../../lib/ops/inspect.js';
import type { Inode } from '../../lib/ext4/inode.js';

describe('pipeChunks', () => {
  it('never asks for the next chunk before the stream took the previous one', async () => {
    let produced = 0;
    let consumed = 0;
    let maxAhead = 0;
    async function* gen() {
      for (let i = 0; i < 50; i++) {
        produced++;
        maxAhead = Math.max(maxAhead, produced - consumed);
        yield new Uint8Array(64 * 1024).fill(i);
      }
    }
    const out = new Writable({
      highWaterMark: 1024,
      write(c: Buffer, _e, cb) {
        setTimeout(() => {
          consumed++;
          cb();
        }, 2);
      },
    });
    const n = await pipeChunks(gen(), out);
    expect(n).toBe(50 * 64 * 1024);
    expect(maxAhead).toBeLessThanOrEqual(2);
  });

  it('rejects when the stream fails', async () => {
    async function* gen() {
      for (;;) yield new Uint8Array(1 << 16);
    }
    const out = new Writable({ highWaterMark: 1, write: (_c, _e, cb) => cb(Object.assign(new Error('broken pipe'), { code: 'EPIPE' })) });
    out.on('error', () => undefined);
    await expect(pipeChunks(gen(), out)).rejects.toMatchObject({ code: 'EPIPE' });
  });
});

describe('formatting', () => {
  it('modeString is ls -l', () => {
    expect(modeString('file', 0o644)).toBe('-rw-r--r--');
    expect(modeString('dir', 0o1777)).toBe('drwxrwxrwt');
    expect(modeString('dir', 0o1776)).toBe('drwxrwxrwT');
    expect(modeString('file', 0o4755)).toBe('-rwsr-xr-x');
    expect(modeString('file', 0o4644)).toBe('-rwSr--r--');
    expect(modeString('file', 0o2750)).toBe('-rwxr-s---');
    expect(modeString('file', 0o2740)).toBe('-rwxr-S---');
    expect(modeString('symlink', 0o777)).toBe('lrwxrwxrwx');
    expect(modeString('chardev', 0o620)).toBe('crw--w----');
    expect(modeString('blockdev', 0o660)).toBe('brw-rw----');
    expect(modeString('fifo', 0)).toBe('p---------');
    expect(modeString('socket', 0o7777)).toBe('srwsrwsrwt');
  });

  it('formatTime handles negative, 2038+ and nanoseconds', () => {
    expect(formatTime(0)).toBe('1970-01-01 00:00:00');
    expect(formatTime(-1)).toBe('1969-12-31 23:59:59');
    expect(formatTime(2 ** 31)).toBe('2038-01-19 03:14:08');
    expect(formatTime(4102444800, 123456789)).toBe('2100-01-01 00:00:00.123456789');
    expect(formatTime(2 ** 34 - 1)).toBe('2514-05-30 01:53:03');
  });

  it('escapeName makes control characters visible', () => {
    expect(escapeName('a\nb\x7fc\\d')).toBe('a\\x0ab\\x7fc\\\\d');
    expect(escapeName('日本語 é')).toBe('日本語 é');
  });

  it('table aligns columns and never pads the last one', () => {
    expect(table([['a', '1', 'x'], ['bbb', '22', 'yy']], [1])).toBe('a    1 x\nbbb 22 yy\n');
  });

  it('describeError', () => {
    expect(describeError(new Ext4Error('ENOENT', 'gone'))).toEqual({ message: 'ext4kit: ENOENT: gone', exitCode: 1 });
    expect(describeError(new Ext4Error('EFSCORRUPTED', 'bad', { structure: 'inode 12', location: { kind: 'group', group: 0 } })).message).toBe('ext4kit: EFSCORRUPTED: bad (inode 12 at group 0)');
    expect(describeError(Object.assign(new Error('x'), { code: 'EACCES' })).message).toBe('ext4kit: EACCES: x');
    expect(describeError(new TypeError('oops')).message).toMatch(/^ext4kit: internal error: oops/);
  });
});

describe('inspect helpers', () => {
  it('fsStateName is e2p print_fs_state', () => {
    expect([0, 1, 2, 3, 4, 5].map(fsStateName)).toEqual(['not clean', 'clean', 'not clean with errors', 'clean with errors', 'not clean', 'clean']);
  });

  it('normalizePath', () => {
    expect(['', '/', '//', '/./', 'a', '/a/', 'a//b/./c/', '/a/../b'].map(normalizePath)).toEqual(['/', '/', '/', '/', '/a', '/a', '/a/b/c', '/a/../b']);
  });

  it('compareBytes is unsigned byte order', () => {
    expect(compareBytes(new Uint8Array([0x61, 0xff]), new Uint8Array([0x61, 0xef, 0xbf]))).toBeGreaterThan(0);
    expect(compareBytes(new Uint8Array([0x61]), new Uint8Array([0x61, 0]))).toBeLessThan(0);
    expect(compareBytes(new Uint8Array([0x42]), new Uint8Array([0x61]))).toBeLessThan(0);
  });

  it('decodeRdev: old encoding in i_block[0], new encoding in i_block[1] (kernel)', () => {
    const ino = (w0: number, w1: number) => {
      const b = new Uint8Array(60);
      const dv = new DataView(b.buffer);
      dv.setUint32(0, w0, true);
      dv.setUint32(4, w1, true);
      return { base: { i_block: b } } as unknown as Inode;
    };
    expect(decodeRdev(ino(0x0441, 0))).toEqual({ major: 4, minor: 65 });
    // new_encode_dev(major 300, minor 70000) = (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)
    const enc = (70000 & 0xff) | (300 << 8) | ((70000 & ~0xff) << 12);
    expect(decodeRdev(ino(0, enc >>> 0))).toEqual({ major: 300, minor: 70000 });
    expect(decodeRdev(ino(0x0703, 0xdeadbeef))).toEqual({ major: 7, minor: 3 });
  });
});
