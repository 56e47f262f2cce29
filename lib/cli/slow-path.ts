/**
 * The commands launch.ts does not run from a script: a fast command's ES module (when run from
 * source, or a bundle without the command's script), else commander (program.ts), which also prints usage errors
 * and help. In the bundle an ES module entry of its own (cli-chunks/slow.js), which both entries
 * import (main.ts, bin.ts).
 */
import type { FastArgs } from './fast-path.js';
import { runFastModule } from './fast-path.js';
import { loadFastModule } from './fast-modules.js';
import { processIO } from './output.js';

/** `fast`: the fast command to run as a module first (null: straight to commander). */
export async function runSlow(argv: readonly string[], fast: FastArgs | null): Promise<number> {
  let status: number | null = null;
  if (fast) status = await runFastModule(fast, await loadFastModule(fast.command));
  if (status !== null) return status;
  const { run } = await import('./program.js');
  return run([...argv], processIO());
}
