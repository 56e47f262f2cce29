/** The project's lib/**.ts sources, for the structure tests (dependency rule, declared once, block view). */
import { readdirSync } from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const LIB = path.join(ROOT, 'lib');

/** Every .ts file under `dir` (declaration files excluded), recursively. */
export function listTs(dir: string = LIB): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listTs(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}
