/**
 * What `ext4kit movedata` does once its arguments are parsed, without commander: the commander
 * command (movedata.ts) and the fast path (fast-path.ts; in the bundle a script of its own with a
 * V8 code cache) both run it, so both print the same.
 */
import { movedata } from '../../ops/movedata.js';
import { jsonText, type CliContext, type GlobalOptions } from '../context.js';
import { readByteCount } from '../byte-count.js';
import { withWritable } from '../open-writable.js';

export interface MovedataArgs {
  from: number;
  len: number;
  json?: boolean;
}

/** Move, then the whole output (made after the move and the close succeeded). */
export async function movedataText(image: string, dataPath: string, spacePath: string, opts: MovedataArgs, globals: GlobalOptions, ctx: CliContext): Promise<string> {
  await withWritable(image, globals, ctx, (fs) => movedata(fs, dataPath, spacePath, { from: opts.from, len: opts.len }), undefined, { syncReads: false });
  return opts.json ? jsonText({ moved: opts.len }) : `moved ${opts.len} bytes\n`;
}

/** fast-path.ts: are --from and --len byte counts commander's parser (free.ts parseBytes) takes? */
export function fastValuesValid(values: ReadonlyMap<string, string>): boolean {
  return [...values.values()].every((v) => typeof readByteCount(v) === 'number');
}

/** fast-path.ts: `movedata IMAGE DATAPATH SPACEPATH --from B --len B [--json]` (values checked by fastValuesValid). */
export function runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext, values: ReadonlyMap<string, string>): Promise<string> {
  const bytes = (o: string) => readByteCount(values.get(o) ?? '') as number;
  return movedataText(positionals[0]!, positionals[1]!, positionals[2]!, { from: bytes('--from'), len: bytes('--len'), json: flags.has('--json') }, globals, ctx);
}
