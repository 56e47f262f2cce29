/**
 * No error in lib is given its location in words. Every
 * `location:` is a typed Location (the words are derived by describeLocation), and
 * ErrorDetail.location no longer accepts a string (so tsc catches what a grep cannot).
 *
 * (issue 9 item 6: locations are data scripts can switch on, not words to parse).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const LIB = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../lib');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

describe('error locations are typed', () => {
  it('no `location:` / `where:` given as words in lib (CheckProblem, the CLI contract, excepted)', () => {
    const words: string[] = [];
    for (const f of sources(LIB)) {
      const rel = path.relative(LIB, f);
      fs.readFileSync(f, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          // words: a string or template literal, or a conditional choosing between them
          const m = /\b(location|where)\s*:\s*(?:[^,{}()]*\?\s*)?['"`]/.exec(line);
          if (!m) return;
          if (/^\s*(\*|\/\/|\/\*)/.test(line)) return; // comments
          // e2fsck-style problems keep words (CheckProblem.location is printed by `ext4kit check`)
          if (/\bpass\s*:|\bmessage\s*:/.test(line) || /^ops\/check/.test(rel) && /\bbad\(|out\.push|report\(/.test(line)) return;
          words.push(`lib/${rel}:${i + 1}: ${line.trim().slice(0, 140)}`);
        });
    }
    expect(words).toEqual([]);
  });

  it('ErrorDetail.location takes a Location only', () => {
    const errors = fs.readFileSync(path.join(LIB, 'errors.ts'), 'utf8');
    expect(errors).toMatch(/\n\s*location\?: Location;/);
    expect(errors).not.toMatch(/location\?: Location \| string/);
  });

  it('no helper builds location words (`where: string`, `loc: string`, `(): string` for a location)', () => {
    const found: string[] = [];
    for (const f of sources(LIB)) {
      const rel = path.relative(LIB, f);
      if (rel === 'errors.ts') continue;
      fs.readFileSync(f, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          // ops/inspect.ts typeOf(inode, where): `where` is the path the message starts with, not a location
          if (rel === 'ops/inspect.ts' && /function typeOf\(/.test(line)) return;
          if (/\b(where|loc|cwhere|location)\s*[?]?:\s*(\(\)\s*=>\s*)?string\b/.test(line) && !/CheckProblem|^\s*\*|\/\//.test(line) && !/^ops\/check/.test(rel))
            found.push(`lib/${rel}:${i + 1}: ${line.trim().slice(0, 140)}`);
        });
    }
    expect(found).toEqual([]);
  });
});
