/** `ls`'s human output (without --json): one `ls -l`-like line per row. */
import type { ListEntry } from '../../ops/inspect.js';
import { escapeName, formatTime, modeString } from '../util.js';
import { table } from '../context.js';

export function formatList(entries: ListEntry[], fullPaths: boolean): string {
  const rows = entries.map((e) => [
    String(e.ino),
    modeString(e.type, e.mode),
    String(e.nlink),
    String(e.uid),
    String(e.gid),
    e.rdev ? `${e.rdev.major}, ${e.rdev.minor}` : String(e.size),
    formatTime(e.mtime).slice(0, 16),
    escapeName(fullPaths ? e.path : e.name) + (e.target !== undefined ? ` -> ${escapeName(e.target)}` : ''),
  ]);
  return table(rows, [0, 2, 3, 4, 5]);
}
