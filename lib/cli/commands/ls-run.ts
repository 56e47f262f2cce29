/**
 * `ls IMAGE [PATH] [-R|--recursive] [--json]` in a fresh process (fast-path.ts): the listing read
 * through a DiskReader (lib/ext4/disk-reader.ts) on the device, so that the command's script
 * carries no Filesystem, block cache or write engine (a third of what a fresh listing of 10,000
 * entries cost was loading them).
 *
 * It answers only when it is sure to print what the Filesystem path prints: when the journal
 * needs recovery (openDiskSource: null), when the image has something the DiskReader leaves to a
 * Filesystem (FullOpenNeeded), and on any error at all, it prints nothing and returns null, and
 * commander's ls (ls.ts) does the whole listing again on a Filesystem, which prints the same
 * text or reports the error as it always has.
 */
import { openDiskSource } from '../../ext4/disk-source.js';
import { DiskReader } from '../../ext4/disk-reader.js';
import { list, walkList } from '../../ops/inspect.js';
import { LsJson } from './ls-json.js';
import { formatList } from './ls-text.js';
import { openDevice, type CliContext, type GlobalOptions } from '../context.js';

export async function runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, _ctx: CliContext): Promise<string | Uint8Array | Uint8Array[] | null> {
  return lsOnDisk(positionals[0]!, positionals[1] ?? '/', { recursive: flags.has('-R') || flags.has('--recursive'), json: flags.has('--json'), verify: globals.verify });
}

/** ls's output read through a DiskReader, or null: the Filesystem path must answer (see above). */
export async function lsOnDisk(image: string, path: string, opts: { recursive: boolean; json: boolean; verify: boolean }): Promise<string | Uint8Array | Uint8Array[] | null> {
  let device;
  try {
    device = await openDevice(image);
  } catch {
    return null;
  }
  try {
    const src = await openDiskSource(device, { verify: opts.verify });
    if (src === null) return null;
    const reader = new DiskReader(src);
    if (!opts.json) return formatList(await list(reader, path, { recursive: opts.recursive }), opts.recursive);
    const out = new LsJson({ source: reader });
    for await (const _ of walkList(reader, path, { recursive: opts.recursive }, out));
    return out.finishChunks();
  } catch {
    return null;
  } finally {
    await device.close().catch(() => undefined);
  }
}
