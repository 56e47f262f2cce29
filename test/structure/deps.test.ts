/**
 * The dependency rules of lib/ (DEVELOPERS.md "Layers"), checked on the source text so that
 * type-only imports count too: no import cycles, layers point one way
 * (cli → ops → ext4 / jbd2 → io; lib/codec and lib/errors.ts usable by all; lib/jbd2 knows
 * nothing of ext4), and only lib/io, lib/node.ts and lib/cli touch Node built-ins.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { LIB, listTs } from '../helpers/lib-sources.js';



/** Every module specifier of a file: import / export … from, side-effect imports, import(). */
export function specifiers(src: string): string[] {
  const code = src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const out: string[] = [];
  const res = [
    /\b(?:import|export)\s+(?:type\s+)?[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of res) for (const m of code.matchAll(re)) out.push(m[1]!);
  return out;
}

/** The module graph of lib/: file (relative to lib) → relative files it imports, plus bare specifiers. */
export function libGraph(): { edges: Map<string, string[]>; bare: Map<string, string[]> } {
  const edges = new Map<string, string[]>();
  const bare = new Map<string, string[]>();
  for (const abs of listTs(LIB)) {
    const rel = path.relative(LIB, abs);
    const deps: string[] = [];
    const ext: string[] = [];
    for (const s of specifiers(readFileSync(abs, 'utf8'))) {
      if (s.startsWith('.')) deps.push(path.relative(LIB, path.resolve(path.dirname(abs), s.replace(/\.js$/, '.ts'))));
      else ext.push(s);
    }
    edges.set(rel, [...new Set(deps)]);
    bare.set(rel, ext);
  }
  return { edges, bare };
}

/** Strongly connected components with more than one module (or a self-import), each as one cycle path. */
export function findCycles(edges: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), on = new Set<string>();
  const stack: string[] = [];
  const sccs: string[][] = [];
  const strong = (v: string): void => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!edges.has(w)) continue;
      if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const c: string[] = [];
      let w: string;
      do { w = stack.pop()!; on.delete(w); c.push(w); } while (w !== v);
      if (c.length > 1 || (edges.get(v) ?? []).includes(v)) sccs.push(c);
    }
  };
  for (const v of [...edges.keys()].sort()) if (!idx.has(v)) strong(v);
  // Name one concrete cycle per component: a shortest path back to its first module.
  return sccs.map((c) => {
    const inC = new Set(c);
    const start = [...c].sort()[0]!;
    const prev = new Map<string, string>();
    const queue = [start];
    const seen = new Set([start]);
    while (queue.length) {
      const v = queue.shift()!;
      for (const w of edges.get(v) ?? []) {
        if (!inC.has(w)) continue;
        if (w === start) {
          const p = [v];
          while (p[0] !== start) p.unshift(prev.get(p[0]!)!);
          return [...p, start];
        }
        if (!seen.has(w)) { seen.add(w); prev.set(w, v); queue.push(w); }
      }
    }
    return [...c, c[0]!];
  });
}

/** Every module on a cycle through `v` (reachable from v and reaching back to it). */
function sccOf(edges: Map<string, string[]>, v: string): string[] {
  const reach = (from: string, next: (n: string) => string[]) => {
    const seen = new Set([from]);
    const todo = [from];
    while (todo.length) for (const w of next(todo.pop()!)) if (!seen.has(w)) { seen.add(w); todo.push(w); }
    return seen;
  };
  const rev = new Map<string, string[]>();
  for (const [a, ds] of edges) for (const d of ds) rev.set(d, [...(rev.get(d) ?? []), a]);
  const back = reach(v, (n) => rev.get(n) ?? []);
  return [...reach(v, (n) => edges.get(n) ?? [])].filter((n) => back.has(n)).sort();
}

/** The layer of a lib/ module, and what each layer may import. */
function layerOf(rel: string): string {
  if (rel === 'errors.ts') return 'errors';
  if (rel === 'index.ts' || rel === 'node.ts' || rel === 'testing.ts') return 'entry';
  const top = rel.split(path.sep)[0]!;
  return top.endsWith('.ts') ? 'entry' : top;
}
const MAY_IMPORT: Record<string, string[]> = {
  errors: ['errors'],
  codec: ['codec', 'errors'],
  io: ['io', 'codec', 'errors'],
  jbd2: ['jbd2', 'io', 'codec', 'errors'],
  ext4: ['ext4', 'jbd2', 'io', 'codec', 'errors'],
  ops: ['ops', 'ext4', 'jbd2', 'io', 'codec', 'errors'],
  cli: ['cli', 'entry', 'ops', 'ext4', 'jbd2', 'io', 'codec', 'errors'],
  entry: ['entry', 'ops', 'ext4', 'jbd2', 'io', 'codec', 'errors'],
};
const NODE_ALLOWED = (rel: string) => rel === 'node.ts' || rel.startsWith(`io${path.sep}`) || rel.startsWith(`cli${path.sep}`);
// 'buffer' is also the npm package the browser build uses (issue 9 item 3): allowed as a bare name.
const NODE_BUILTINS = new Set(builtinModules.filter((m) => !m.startsWith('_') && m !== 'buffer'));
const isNodeBuiltin = (s: string) => s.startsWith('node:') || NODE_BUILTINS.has(s.split('/')[0]!);

describe('lib dependency rules', () => {
  const { edges, bare } = libGraph();

  it('parses every import form', () => {
    const src = [
      "import type { A } from './a.js';",
      "import {\n  B,\n  type C,\n} from '../b.js';",
      "export * from './c.js';",
      "export { D } from './d.js';",
      "import './e.js';",
      "const f = await import('./f.js');",
      "// import { G } from './g.js';",
      "/* import { H } from './h.js'; */",
      "const s = 'http://x'; import { I } from './i.js';",
    ].join('\n');
    expect(specifiers(src).sort()).toEqual(['../b.js', './a.js', './c.js', './d.js', './e.js', './f.js', './i.js']);
    expect(edges.size).toBeGreaterThan(50);
    expect(edges.get(path.join('ext4', 'superblock.ts'))).toBeDefined();
  });

  it('finds a cycle when there is one (the checker can fail)', () => {
    const g = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]);
    expect(findCycles(g)).toEqual([['a', 'b', 'c', 'a']]);
  });

  it('has no import cycles (type-only imports included)', () => {
    const cycles = findCycles(edges).map((c) => {
      const members = sccOf(edges, c[0]!);
      return `${c.join(' → ')}${members.length > c.length - 1 ? ` (all ${members.length} modules on cycles with it: ${members.join(', ')})` : ''}`;
    });
    expect(cycles).toEqual([]);
  });

  it('layers point one way: cli → ops → ext4 / jbd2 → io; codec and errors for all', () => {
    const bad: string[] = [];
    for (const [from, deps] of edges) {
      const lf = layerOf(from);
      for (const to of deps) {
        if (!edges.has(to)) { bad.push(`${from} imports ${to}, which does not exist`); continue; }
        const lt = layerOf(to);
        if (!MAY_IMPORT[lf]!.includes(lt)) bad.push(`${from} (${lf}) imports ${to} (${lt})`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('only lib/io, lib/node.ts and lib/cli import Node built-ins', () => {
    const bad: string[] = [];
    for (const [from, specs] of bare) for (const s of specs) if (isNodeBuiltin(s) && !NODE_ALLOWED(from)) bad.push(`${from} imports ${s}`);
    expect(bad).toEqual([]);
  });
});
