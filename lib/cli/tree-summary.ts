/**
 * The one-line summary of the tree commands (import, export, cp -r). Apart from progress.ts, which
 * loads cli-progress: import's fast script prints this line without loading the bar's module.
 */
import type { TreeSummary } from '../ops/tree-entry.js';

/** "12 entries (3 dirs, 8 files, 1 symlinks, …), N bytes in T transactions" */
export function summaryLine(verb: string, s: TreeSummary): string {
  const parts = [`${s.dirs} dirs`, `${s.files} files`, `${s.symlinks} symlinks`, `${s.hardlinks} hard links`, `${s.special} special`, `${s.xattrs} xattrs`];
  return `${verb} ${s.entries} entries (${parts.join(', ')}), ${s.bytes} bytes${s.transactions ? ` in ${s.transactions} transactions` : ''}\n`;
}
