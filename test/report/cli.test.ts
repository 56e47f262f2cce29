/**
 * The frag, freefrag and draw commands, run in-process through commander
 * (registered on a bare program exactly as lib/cli/program.ts registers
 * commands), on a small mkfs -d image; text output equals the tools'.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { mkfs, run } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';
import { describeError, type CliContext } from '../../lib/cli/util.js';
import * as frag from '../../lib/cli/commands/frag.js';
import * as freefrag from '../../lib/cli/commands/freefrag.js';
import * as draw from '../../lib/cli/commands/draw.js';
import { parseXml, LANG_C } from './helpers.js';

class Sink extends Writable {
  data = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.data += chunk.toString('utf8');
    cb();
  }
}

async function cli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const stdout = new Sink(), stderr = new Sink();
  const ctx: CliContext = { io: { stdout, stderr } };
  const program = new Command('ext4kit')
    .option('--no-verify', 'ignore checksum mismatches')
    .configureOutput({ writeOut: (s) => stdout.write(s), writeErr: (s) => stderr.write(s), outputError: (s, w) => w(`ext4kit: ${s}`) })
    .exitOverride();
  for (const m of [frag, freefrag, draw]) m.register(program, ctx);
  try {
    await program.parseAsync(args, { from: 'user' });
    return { status: 0, stdout: stdout.data, stderr: stderr.data };
  } catch (e) {
    if (e instanceof CommanderError) return { status: e.exitCode === 0 ? 0 : 2, stdout: stdout.data, stderr: stderr.data };
    const d = describeError(e);
    return { status: d.exitCode, stdout: stdout.data, stderr: stderr.data + d.message + '\n' };
  }
}

let img = '';
beforeAll(() => {
  const src = tmpDir('cli-src');
  fs.mkdirSync(path.join(src, 'd'));
  for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(src, 'd', `f${i}`), prngBytes(`f${i}`, 5000 * (i + 1)));
  fs.writeFileSync(path.join(src, 'big'), prngBytes('big', 3 << 20));
  fs.writeFileSync(path.join(src, 'empty'), '');
  img = tmpPath('cli.img');
  mkfs('ext4', img, 32 << 20, ['-b', '4096'], src);
  // punch holes in the free space pattern: delete some files offline with debugfs
  run('debugfs', ['-w', '-R', 'rm /d/f3', img], { env: LANG_C });
  run('debugfs', ['-w', '-R', 'rm /d/f9', img], { env: LANG_C });
  run('e2fsck', ['-fy', img], { okStatus: [0, 1], env: LANG_C });
});

describe('ext4kit freefrag', () => {
  it('prints what e2freefrag prints, with and without -c; --json has the numbers', async () => {
    for (const c of [[], ['-c', '64']]) {
      const r = await cli(['freefrag', img, ...c]);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(run('e2freefrag', [...c, img], { env: LANG_C }).stdout);
    }
    const j = JSON.parse((await cli(['freefrag', img, '-c', '64', '--json'])).stdout) as { chunk: { blocks: number }; histogram: unknown[]; freeExtents: number };
    expect(j.chunk.blocks).toBe(16);
    expect(j.histogram.length).toBeGreaterThan(0);
  });
  it('rejects a chunk size that is not a power of two (usage error) or below the block size (EINVAL)', async () => {
    const a = await cli(['freefrag', img, '-c', '48']);
    expect(a.status).toBe(2);
    expect(a.stderr).toContain('power of 2');
    const b = await cli(['freefrag', img, '-c', '1']);
    expect(b.status).toBe(1);
    expect(b.stderr).toContain('EINVAL');
  });
});

describe('ext4kit frag', () => {
  it('whole filesystem: e4defrag-style statistics; --json; -v lists files', async () => {
    const r = await cli(['frag', img]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/<Fragmented files>/);
    expect(r.stdout).toMatch(/Total\/best extents\t+\d+\/\d+/);
    expect(r.stdout).toContain(`This device (${img})`);
    expect(r.stdout).toContain('[0-30 no problem: 31-55 a little bit fragmented: 56- needs defrag]');
    const j = JSON.parse((await cli(['frag', img, '--json'])).stdout) as { targets: { files: { path: string }[]; totals: { scoreText: string } }[] };
    expect(j.targets[0]!.files.map((f) => f.path)).toContain('/big');
    expect(r.stdout).toContain(`Fragmentation score\t\t\t\t${j.targets[0]!.totals.scoreText}\n`);
    const v = await cli(['frag', img, '-v']);
    expect(v.stdout).toMatch(/^\[\d+\/\d+\]\/d\/f1\s+\d+\/\d+\s+\d+ KB$/m);
  });
  it('paths: a directory, a file, refusals; --one-block-files keeps small files', async () => {
    const r = await cli(['frag', img, '/d', '/big', '/lost+found', '/empty', '/nope']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('This directory (/d)');
    expect(r.stdout).toContain('This file (/big)');
    expect(r.stdout).toContain('Can not process "lost+found"');
    expect(r.stdout).toContain(" This file(/empty) can't be defragmented.");
    expect(r.stdout).toContain('Failed to get file information: No such file or directory\n "/nope"');
    const a = JSON.parse((await cli(['frag', img, '/d', '--json'])).stdout) as { targets: { files: unknown[] }[] };
    const b = JSON.parse((await cli(['frag', img, '/d', '--json', '--one-block-files'])).stdout) as { targets: { files: unknown[] }[] };
    expect(b.targets[0]!.files.length).toBeGreaterThanOrEqual(a.targets[0]!.files.length);
  });
  it('--extents prints filefrag -v rows; needs a PATH', async () => {
    const r = await cli(['frag', img, '--extents', '/big', '/d']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^File size of \/big is 3145728 \(768 blocks of 4096 bytes\)$/m);
    expect(r.stdout).toMatch(/^ ext: +logical_offset: +physical_offset: length: +expected: flags:$/m);
    expect(r.stdout).toMatch(/^\/big: \d+ extents? found$/m);
    const j = JSON.parse((await cli(['frag', img, '-e', '/big', '--json'])).stdout) as { rows: { flags: string[] }[]; extents: number }[];
    expect(j[0]!.rows.at(-1)!.flags).toContain('last');
    const bad = await cli(['frag', img, '--extents']);
    expect(bad.status).toBe(2);
    const missing = await cli(['frag', img, '-e', '/nope']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('ENOENT');
  });
});

describe('ext4kit draw', () => {
  it('writes a well-formed SVG to --out (or stdout with -)', async () => {
    const out = tmpPath('map.svg');
    const r = await cli(['draw', img, '--out', out, '--title', 'CLI map', '--max-cells', '2000']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*map\.svg: \d+ cells of \d+ blocks/);
    const svg = fs.readFileSync(out, 'utf8');
    const els = parseXml(svg);
    expect(Number(els.find((e) => e.attrs.id === 'map')!.attrs['data-cells'])).toBeLessThanOrEqual(2000);
    expect(svg).toContain('CLI map');
    const s = await cli(['draw', img, '-o', '-']);
    expect(s.stdout.startsWith('<?xml')).toBe(true);
    parseXml(s.stdout);
    expect((await cli(['draw', img])).status).toBe(2); // --out is required
    expect((await cli(['draw', img, '-o', out, '--width', 'x'])).status).toBe(2);
  });
});
