#!/usr/bin/env -S npx tsx
/**
 * Codemod: Ext4Error locations from words to typed objects (issue 9 item 6).
 *
 *   npx tsx scripts/codemod-locations.mjs [root] [--dry-run] [--keep-words]
 *
 * Rewrites every `location:` an error is given in <root>/lib (default: the current directory)
 * from words (`'byte 1024'`, `` `group ${g} block ${b}` ``, `'s_state'`, …) to the typed
 * `Location` of lib/errors.ts (`{ kind: 'byte', offset: 1024 }`, `{ kind: 'group', group: g,
 * block: b }`, `{ kind: 'field', field: 's_state' }`), and the helpers that carry locations as
 * words (`where: string` parameters, `byteRange`, the journal recovery's `where`) to carry
 * `Location`s. Then, unless --keep-words, it narrows `ErrorDetail.location` to `Location`, so
 * that `tsc` finds any words left (the transition's `parseLocation` stays for old callers' data).
 *
 * How a template is mapped: each `${…}` is replaced by a marker number, the words are parsed
 * with lib/errors.ts `parseLocation` (the one mapping, also used at run time during the
 * transition), and the markers in the typed result are put back as the expressions. A template
 * whose holes land anywhere but a whole number field (or a conditional whose branches do not
 * both map) is left alone and listed: `describeLocation` of the result is, by construction,
 * the old words, so messages do not change.
 *
 * Idempotent: typed locations are not words and are left alone. Prints what it changed, and
 * what it could not, file by file; exit 1 if a targeted rule found nothing to change and the
 * file does not already have its result (the code moved: look at the rule).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const dryRun = args.includes('--dry-run');
const keepWords = args.includes('--keep-words');
const root = path.resolve(args.find((a) => !a.startsWith('--')) ?? '.');
const { parseLocation } = await import(pathToFileURL(path.join(root, 'lib/errors.ts')).href);

// ------------------------------------------------------------------------------------ scanning

/** End (exclusive) of the string/template/comment starting at i, or -1 when i starts none. */
function skipToken(s, i) {
  const c = s[i];
  if (c === "'" || c === '"') {
    for (let j = i + 1; j < s.length; j++) {
      if (s[j] === '\\') j++;
      else if (s[j] === c) return j + 1;
    }
    return s.length;
  }
  if (c === '`') {
    for (let j = i + 1; j < s.length; j++) {
      if (s[j] === '\\') j++;
      else if (s[j] === '`') return j + 1;
      else if (s[j] === '$' && s[j + 1] === '{') j = exprEnd(s, j + 2, '}');
    }
    return s.length;
  }
  if (c === '/' && s[i + 1] === '/') {
    const n = s.indexOf('\n', i);
    return n < 0 ? s.length : n;
  }
  if (c === '/' && s[i + 1] === '*') {
    const n = s.indexOf('*/', i + 2);
    return n < 0 ? s.length : n + 2;
  }
  return -1;
}

/**
 * End of the expression starting at i: the first top-level `,` `;` or an unmatched closer
 * (or `close` itself when given: the end of a template hole).
 */
function exprEnd(s, i, close) {
  let depth = 0;
  for (let j = i; j < s.length; j++) {
    const t = skipToken(s, j);
    if (t >= 0) {
      j = t - 1;
      continue;
    }
    const c = s[j];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      if (depth === 0) return j;
      depth--;
    } else if (depth === 0 && (c === ',' || c === ';') && close === undefined) return j;
  }
  return s.length;
}

/** The parts of a template literal source: literal text and hole expressions, alternating. */
function templateParts(src) {
  const texts = [];
  const holes = [];
  let cur = '';
  for (let j = 1; j < src.length - 1; j++) {
    if (src[j] === '\\') {
      cur += src[j + 1];
      j++;
    } else if (src[j] === '$' && src[j + 1] === '{') {
      const end = exprEnd(src, j + 2, '}');
      texts.push(cur);
      cur = '';
      holes.push(src.slice(j + 2, end).trim());
      j = end;
    } else cur += src[j];
  }
  texts.push(cur);
  return { texts, holes };
}

// ------------------------------------------------------------------------------------ mapping

const MARK = 987_650_000;

/** Source of a typed location for words `text`; null when it does not map cleanly. */
function typedFor(words, holes, allowText) {
  const loc = parseLocation(words);
  if (loc.kind === 'text' && !(allowText && holes.length === 0)) return null;
  let used = 0;
  const ok = { value: true };
  const src = emit(loc, holes, ok, () => used++);
  return ok.value && used === holes.length ? src : null;
}

function emit(v, holes, ok, use) {
  if (typeof v === 'number') {
    const k = v - MARK;
    if (k >= 0 && k < holes.length) {
      use();
      return holes[k];
    }
    if (v >= MARK - 1_000_000) ok.value = false; // arithmetic on a marker: not a plain hole
    return String(v);
  }
  if (typeof v === 'string') {
    if (/98765\d{4}/.test(v)) ok.value = false; // a hole inside a string field
    return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  }
  const fields = Object.entries(v).map(([k, x]) => `${/^[a-z]\w*$/i.test(k) ? k : `'${k}'`}: ${emit(x, holes, ok, use)}`);
  return `{ ${fields.join(', ')} }`;
}

/**
 * Typed source for a location expression in words, or null. `loose` (tests): words no kind
 * describes become `{ kind: 'text', text: … }` (the same words, template or not).
 */
function mapExpr(src, loose = false) {
  const e = src.trim();
  if (/^'[^'\\]*'$/.test(e) || /^"[^"\\]*"$/.test(e)) return typedFor(e.slice(1, -1), [], true);
  if (e.startsWith('`') && e.endsWith('`') && skipToken(e, 0) === e.length) {
    const { texts, holes } = templateParts(e);
    const words = texts.map((t, i) => t + (i < holes.length ? String(MARK + i) : '')).join('');
    return typedFor(words, holes, true) ?? (loose ? `{ kind: 'text', text: ${e} }` : null);
  }
  // cond ? A : B, both branches words
  const q = topLevel(e, '?');
  if (q > 0) {
    const c = topLevel(e, ':', q + 1);
    if (c > 0) {
      const a = mapExpr(e.slice(q + 1, c), loose);
      const b = mapExpr(e.slice(c + 1), loose);
      if (a && b) return `${e.slice(0, q).trim()} ? ${a} : ${b}`;
    }
  }
  return null;
}

function topLevel(s, ch, from = 0) {
  let depth = 0;
  for (let j = from; j < s.length; j++) {
    const t = skipToken(s, j);
    if (t >= 0) {
      j = t - 1;
      continue;
    }
    const c = s[j];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (depth === 0 && c === ch && !(ch === '?' && (s[j + 1] === '?' || s[j + 1] === '.' || s[j - 1] === '?'))) return j;
  }
  return -1;
}

// ------------------------------------------------------------------------------------ rules

/**
 * Helpers that carry locations as words, rewritten in place. Each: the file (relative to root,
 * any file when `file` is '*'), what to find (string, exact) and what it becomes. Found in the
 * code of issue 9; if code moved, the rule reports it instead of guessing.
 */
const RULES = [
  // lib/io: byte ranges
  {
    file: 'lib/io/util.ts',
    find: `/** Human-readable byte range, used in error locations: "bytes 4096..8191". */
export function byteRange(position: number, length: number): string {
  return length > 0 ? \`bytes \${position}..\${position + length - 1}\` : \`byte \${position} (empty range)\`;
}`,
    to: `/** A byte range as an error location ("bytes 4096..8191" in words). */
export function byteRange(position: number, length: number): Location {
  return { kind: 'byte', offset: position, length };
}`,
    imports: { 'lib/errors.ts': ['type Location'] },
  },
  { file: 'lib/io/util.ts', find: 'structure: string, location?: string): Ext4Error {', to: 'structure: string, location?: Location): Ext4Error {' },
  {
    file: 'lib/io/cache.ts',
    find: 'location: count > 1 ? `blocks ${n}..${n + count - 1}` : `block ${n}`,',
    to: "location: { kind: 'block', block: n, count },",
  },
  // jbd2: the recovery's "journal block N (what, tid T)"
  {
    file: 'lib/jbd2/recovery.ts',
    find: `  where(block: number, what: string, tid?: number): string {
    return \`journal block \${block} (\${what}\${tid !== undefined ? \`, tid \${tid}\` : ''})\`;`,
    to: `  where(block: number, what: string, tid?: number): Location {
    return { kind: 'journal-block', block, role: what, ...(tid !== undefined ? { tid } : {}) };`,
    imports: { 'lib/errors.ts': ['type Location'] },
  },
  {
    file: 'lib/jbd2/format.ts',
    find: "export function parseJournalSuperblock(bytes: Uint8Array, where = 'journal block 0', opts",
    to: "export function parseJournalSuperblock(bytes: Uint8Array, where: Location = { kind: 'journal-block', block: 0 }, opts",
    imports: { 'lib/errors.ts': ['type Location'] },
  },
  // ext4: extent trees ("i_block" / "block N", then " entry i" / " index i")
  {
    file: 'lib/ext4/extents.ts',
    find: 'export function readHeader(node: Uint8Array, where: () => string, structure: string)',
    to: 'export function readHeader(node: Uint8Array, where: () => Location, structure: string)',
    imports: { 'lib/errors.ts': ['type Location'] },
  },
  { file: 'lib/ext4/extents.ts', find: "readHeader(iblock, () => 'i_block', structure)", to: "readHeader(iblock, () => I_BLOCK, structure)" },
  {
    file: 'lib/ext4/extents.ts',
    find: "{ structure, location: 'i_block' }",
    to: '{ structure, location: I_BLOCK }',
    all: true,
  },
  {
    file: 'lib/ext4/extents.ts',
    find: 'h: ExtentNodeHeader, lo: number, hi: number, where: string): Promise<void> {',
    to: 'h: ExtentNodeHeader, lo: number, hi: number, where: Location): Promise<void> {',
  },
  { file: 'lib/ext4/extents.ts', find: 'const loc = (): string => `${where} entry ${i}`;', to: "const loc = (): Location => ({ kind: 'part', of: where, part: 'entry', index: i });" },
  { file: 'lib/ext4/extents.ts', find: 'const loc = `${where} index ${i}`;', to: "const loc: Location = { kind: 'part', of: where, part: 'index', index: i };" },
  { file: 'lib/ext4/extents.ts', find: 'const cwhere = `block ${idx.leaf}`;', to: "const cwhere: Location = { kind: 'block', block: idx.leaf };" },
  { file: 'lib/ext4/extents.ts', find: "iblock, root, 0, 2 ** 32, 'i_block')", to: 'iblock, root, 0, 2 ** 32, I_BLOCK)' },
  {
    file: 'lib/ext4/extents.ts',
    find: 'export function readHeader(',
    to: "/** i_block as an error location (the in-inode extent root). */\nconst I_BLOCK: Location = { kind: 'field', field: 'i_block' };\n\nexport function readHeader(",
    once: true,
  },
  { file: 'lib/ext4/extent-edit.ts', find: 'const where = `block ${idx.leaf}`;', to: "const where: Location = { kind: 'block', block: idx.leaf };", imports: { 'lib/errors.ts': ['type Location'] } },
  // ext4: block maps ("i_block[k]", "block N (level L)", then " slot i")
  {
    file: 'lib/ext4/blockmap.ts',
    find: 'const check = (p: number, loc: string) => {',
    to: 'const check = (p: number, loc: Location) => {',
    imports: { 'lib/errors.ts': ['type Location'] },
  },
  { file: 'lib/ext4/blockmap.ts', find: 'async function walk(block: number, level: number, base: number, loc: string): Promise<void> {', to: 'async function walk(block: number, level: number, base: number, loc: Location): Promise<void> {' },
  { file: 'lib/ext4/blockmap.ts', find: 'check(p, `${loc} slot ${i}`);', to: "check(p, { kind: 'part', of: loc, part: 'slot', index: i });" },
  { file: 'lib/ext4/blockmap.ts', find: 'await walk(p, level - 1, lb, `block ${p} (level ${level - 1})`);', to: "await walk(p, level - 1, lb, { kind: 'block', block: p, level: level - 1 });" },
  { file: 'lib/ext4/blockmap.ts', find: 'check(p, `i_block[${i}]`);', to: "check(p, { kind: 'field', field: 'i_block', index: i });" },
  { file: 'lib/ext4/blockmap.ts', find: 'await walk(p, level, base, `i_block[${NDIR_BLOCKS + level - 1}]`);', to: "await walk(p, level, base, { kind: 'field', field: 'i_block', index: NDIR_BLOCKS + level - 1 });" },
  // ext4: directories ("directory D block L (physical P)", then " offset N"; inline data)
  { file: 'lib/ext4/directory.ts', find: 'function corrupt(message: string, where: string, offset: number): Ext4Error {', to: 'function corrupt(message: string, where: Location, offset: number): Ext4Error {', imports: { 'lib/errors.ts': ['type Location'] } },
  { file: 'lib/ext4/directory.ts', find: "location: `${where} offset ${offset}` });", to: "location: { kind: 'part', of: where, part: 'offset', index: offset } });" },
  { file: 'lib/ext4/directory.ts', find: '  where: string;', to: '  where: Location;', all: true },
  {
    file: 'lib/ext4/directory.ts',
    find: 'xattrData: Uint8Array | null, where: string, opts: InlineDirOptions = {}): InlineDirEntry[] {',
    to: `xattrData: Uint8Array | null, where: Location, opts: InlineDirOptions = {}): InlineDirEntry[] {
  const area = (a: 'i_block' | 'system.data'): Location => (where.kind === 'inline-data' ? { ...where, area: a } : where);`,
  },
  { file: 'lib/ext4/directory.ts', find: "location: `${where} i_block offset 0` });", to: "location: { kind: 'part', of: area('i_block'), part: 'offset', index: 0 } });" },
  { file: 'lib/ext4/directory.ts', find: 'where: `${where} i_block` });', to: "where: area('i_block') });" },
  { file: 'lib/ext4/directory.ts', find: 'where: `${where} system.data` });', to: "where: area('system.data') });" },
  { file: '*', find: 'xa?.value ?? null, `directory ${dir.ino} inline data`, {', to: "xa?.value ?? null, { kind: 'inline-data', dir: dir.ino }, {" },
  { file: '*', find: 'const where = `directory ${dir.ino} block ${e.logical + i} (physical ${phys})`;', to: "const where: Location = { kind: 'directory-block', dir: dir.ino, block: e.logical + i, physical: phys };", imports: { 'lib/errors.ts': ['type Location'] } },
  { file: '*', find: 'private parseDirBlockCached(dir: Inode, blk: Uint8Array, where: string)', to: 'private parseDirBlockCached(dir: Inode, blk: Uint8Array, where: Location)' },
  { file: '*', find: 'private dirOpts(dir: Inode, where: string) {', to: 'private dirOpts(dir: Inode, where: Location) {' },
  { file: '*', find: "this.dirOpts(dir, '').hasFiletype", to: "this.dirOpts(dir, { kind: 'inode', ino: dir.ino }).hasFiletype" },
  { file: '*', find: 'this.parseDirBlockCached(dir, blk, `directory ${dir.ino} block ${lb}`)', to: "this.parseDirBlockCached(dir, blk, { kind: 'directory-block', dir: dir.ino, block: lb })" },
  // htree: "directory D block L" (describeBlock gives "block L (physical P)")
  { file: 'lib/ext4/htree.ts', find: 'function corrupt(structure: string, where: string, message: string): Ext4Error {', to: 'function corrupt(structure: string, where: Location, message: string): Ext4Error {', imports: { 'lib/errors.ts': ['type Location'] } },
  { file: 'lib/ext4/htree.ts', find: '  where: string;', to: '  where: Location;', all: true },
  { file: 'lib/ext4/htree.ts', find: 'throw corrupt(S, `${opts.where} offset 0`,', to: "throw corrupt(S, { kind: 'part', of: opts.where, part: 'offset', index: 0 }," },
  { file: 'lib/ext4/htree.ts', find: 'throw corrupt(S, `${opts.where} offset 12`,', to: "throw corrupt(S, { kind: 'part', of: opts.where, part: 'offset', index: 12 }," },
  {
    file: 'lib/ext4/htree.ts',
    find: '  describeBlock?(logical: number): string;',
    to: '  physicalBlock?(logical: number): number;',
  },
  {
    file: 'lib/ext4/htree.ts',
    find: 'const where = (logical: number) => `directory ${ctx.dirIno} ${ctx.describeBlock ? ctx.describeBlock(logical) : `block ${logical}`}`;',
    to: "const where = (logical: number): Location => ({ kind: 'directory-block', dir: ctx.dirIno, block: logical, ...(ctx.physicalBlock ? { physical: ctx.physicalBlock(logical) } : {}) });",
  },
  // orphans: words passed around as { structure, location }
  { file: 'lib/ext4/orphan.ts', find: 'where: { structure: string; location: string }', to: 'where: { structure: string; location: Location }', imports: { 'lib/errors.ts': ['type Location'] } },
  { file: 'lib/ext4/orphan.ts', find: "let where = { structure: 'superblock', location: 's_last_orphan' };", to: "let where: { structure: string; location: Location } = { structure: 'superblock', location: { kind: 'field', field: 's_last_orphan' } };" },
  // orphan.ts's own block-map walk (issue 9 moves it into inode-lifecycle.ts; optional: it may be gone)
  { file: '*', find: 'const check = (p: number, loc: string) => {', to: 'const check = (p: number, loc: Location) => {', imports: { 'lib/errors.ts': ['type Location'] }, optional: true },
  { file: '*', find: 'const visit = (b: number, loc: string) => {', to: 'const visit = (b: number, loc: Location) => {', optional: true },
  // xattrs
  { file: 'lib/ext4/xattr.ts', find: 'structure: string, location: string): XattrEntry[] {', to: 'structure: string, location: Location): XattrEntry[] {', imports: { 'lib/errors.ts': ['type Location'] } },
  { file: 'lib/ext4/xattr.ts', find: "const structure = 'xattr block', location = `block ${blockNr}`;", to: "const structure = 'xattr block', location: Location = { kind: 'block', block: blockNr };" },
  { file: '*', find: "readHeader(iblock, () => 'i_block', structure)", to: "readHeader(iblock, () => ({ kind: 'field', field: 'i_block' }), structure)" },
  { file: 'lib/ext4/xattr.ts', find: "`inode ${ino} in-inode xattrs`, `byte ${start}`);", to: "`inode ${ino} in-inode xattrs`, { kind: 'byte', offset: start });" },
  { file: 'lib/jbd2/format.ts', find: "parseJournalSuperblock(bytes, 'journal block 0 (in memory)',", to: "parseJournalSuperblock(bytes, { kind: 'journal-block', block: 0, role: 'in memory' }," },
  { file: 'lib/jbd2/recovery.ts', find: "parseJournalSuperblock(raw, 'journal block 0',", to: "parseJournalSuperblock(raw, { kind: 'journal-block', block: 0 }," },
  { file: 'lib/ops/check-journal.ts', find: 'parseJournalSuperblock(block0, `journal block 0 (block ${first.physical})`,', to: "parseJournalSuperblock(block0, { kind: 'journal-block', block: 0, role: `block ${first.physical}` }," },
  // check: e2fsck-style problems keep words (CheckProblem.location is the CLI's --json contract)
  { file: 'lib/ops/check-htree.ts', find: 'where: `directory ${dir.ino} block ${lb}` });', to: "where: { kind: 'directory-block', dir: dir.ino, block: lb } satisfies Location });", imports: { 'lib/errors.ts': ['type Location'] } },
];

/** Calls whose argument `index` is a location (tests pass words there too). */
const POSITIONAL = { parseJournalSuperblock: 1, parseInlineDir: 2, dxOpts: 1, readHeader: 1 };

/** The same for test files (helpers of the tests that build locations). */
const TEST_RULES = [
  { file: 'test/dir/real-images.test.ts', find: 'describeBlock: (l) => `block ${l} (physical ${info.blocks[l]})`,', to: 'physicalBlock: (l) => info.blocks[l]!,' },
  { file: 'test/dir/real-images.test.ts', find: 'function dxOpts(img: TestImage, where: string) {', to: 'function dxOpts(img: TestImage, where: Location) {' },
  {
    file: 'test/dir/real-images.test.ts',
    find: 'const where = `directory ${im.big.ino} block ${hit.block} (physical ${im.big.blocks[hit.block]})`;',
    to: "const where: Location = { kind: 'directory-block', dir: im.big.ino, block: hit.block, physical: im.big.blocks[hit.block]! };",
  },
  { file: 'test/dir/real-images.test.ts', find: 'toContain(`${where} offset ${hit.offset}`);', to: 'toContain(`${describeLocation(where)} offset ${hit.offset}`);', imports: ['describeLocation'] },
];

// ------------------------------------------------------------------------------------ apply

function listTs(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listTs(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

const files = listTs(path.join(root, 'lib')).filter((f) => !f.endsWith(`${path.sep}errors.ts`));
const edited = new Map(files.map((f) => [f, fs.readFileSync(f, 'utf8')]));
const log = [];
let failed = false;

function addImports(file, names) {
  let s = edited.get(file);
  const rel = path.relative(path.dirname(file), path.join(root, 'lib/errors.js')).replace(/\\/g, '/');
  const spec = rel.startsWith('.') ? rel : `./${rel}`;
  const re = new RegExp(`import \\{([^}]*)\\} from '${spec.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}';`);
  const m = re.exec(s);
  const want = names.filter((n) => !(m && new RegExp(`\\b${n.replace('type ', '')}\\b`).test(m[1])));
  if (!want.length) return;
  if (m) s = s.replace(m[0], `import {${m[1].trimEnd().replace(/,?\s*$/, '')}, ${want.join(', ')} } from '${spec}';`);
  else {
    // after the last import line
    const lines = s.split('\n');
    let last = -1;
    lines.forEach((l, i) => {
      if (/^import .* from '.*';$/.test(l)) last = i;
    });
    lines.splice(last + 1, 0, `import { ${want.join(', ')} } from '${spec}';`);
    s = lines.join('\n');
  }
  edited.set(file, s);
}

// 1. targeted rules
for (const r of RULES) {
  const targets = r.file === '*' ? files : [path.join(root, r.file)];
  let hits = 0;
  let done = false;
  for (const f of targets) {
    let s = edited.get(f);
    if (s === undefined) continue;
    if (r.once && s.includes(r.to)) {
      done = true;
      continue;
    }
    const n = s.split(r.find).length - 1;
    if (n === 0) {
      if (s.includes(r.to)) done = true;
      continue;
    }
    if (n > 1 && !r.all) {
      log.push(`${path.relative(root, f)}: rule matches ${n} times, expected one: ${r.find.slice(0, 80)}`);
      failed = true;
      continue;
    }
    s = r.once ? s.replace(r.find, () => r.to) : s.split(r.find).join(r.to);
    edited.set(f, s);
    hits += r.once ? 1 : n;
    for (const names of Object.values(r.imports ?? {})) addImports(f, names);
    // 'type Location' also wherever a rule introduced `Location` without saying so
    if (/\bLocation\b/.test(r.to) && !r.imports) addImports(f, ['type Location']);
  }
  if (!hits && !done && !r.optional) {
    log.push(`rule not applied (code moved?): ${r.file}: ${r.find.split('\n')[0].slice(0, 100)}`);
    failed = true;
  } else if (hits) log.push(`${r.file}: ${hits}× ${r.find.split('\n')[0].slice(0, 70)}`);
}

// 2. every remaining `location: <words>` (and, in option objects, `where: <words>`)
/** The object literal around position i: [start of `{`, text before it], or null. */
function enclosingObject(s, i) {
  let depth = 0;
  for (let j = i - 1; j >= 0; j--) {
    const c = s[j];
    if (c === '}' || c === ')' || c === ']') depth++;
    else if (c === '(' || c === '[') {
      if (depth === 0) return null;
      depth--;
    } else if (c === '{') {
      if (depth === 0) return { open: j, before: s.slice(0, j).trimEnd().slice(-1), body: s.slice(j, exprEnd(s, j + 1, '}') + 1) };
      depth--;
    }
  }
  return null;
}

const testFiles = listTs(path.join(root, 'test'));
for (const f of testFiles) edited.set(f, fs.readFileSync(f, 'utf8'));
const left = [];
for (const f of [...files, ...testFiles]) {
  const loose = testFiles.includes(f);
  let s = edited.get(f);
  let out = '';
  let i = 0;
  let changed = 0;
  let needsType = false;
  const re = /\b(location|where)\s*:\s*/g;
  let m;
  while ((m = re.exec(s))) {
    const start = m.index + m[0].length;
    if (start < i) continue;
    const end = exprEnd(s, start);
    const expr = s.slice(start, end);
    if (/^(string|Location|number)\b/.test(expr.trim())) continue; // a type annotation
    const obj = enclosingObject(s, m.index);
    if (!obj) continue; // a parameter or a type
    // e2fsck-style problems (CheckProblem: pass, code, message) keep their words: the CLI prints them
    if (/\b(pass|message)\s*:/.test(obj.body)) continue;
    const literal = /^['"`]/.test(expr.trim());
    if (m[1] === 'where' && !literal) continue;
    const typed = mapExpr(expr, loose);
    if (typed) {
      // a literal kept in a variable (or returned by an arrow) widens `kind` to string: say what it is
      const pre = s.slice(0, obj.open).trimEnd();
      const argument = pre.endsWith(',') || (pre.endsWith('(') && !/(=>|=|return)$/.test(pre.slice(0, -1).trimEnd()));
      out += s.slice(i, start) + typed + (argument ? '' : ' satisfies Location') + expr.slice(expr.trimEnd().length);
      if (!argument) needsType = true;
      i = end;
      changed++;
    } else if (!loose && (literal || /^[^?]*\?\s*['"`]/.test(expr.trim()))) {
      left.push(`${path.relative(root, f)}:${s.slice(0, start).split('\n').length}: ${expr.trim().replace(/\s+/g, ' ').slice(0, 100)}`);
    }
  }
  if (changed) {
    s = out + s.slice(i);
    edited.set(f, s);
    if (needsType) addImports(f, ['type Location']);
    log.push(`${path.relative(root, f)}: ${changed} location(s) in words → typed`);
  }
}

// 2b. test helpers, and words passed positionally where a location is expected
for (const r of TEST_RULES) {
  const f = path.join(root, r.file);
  let s = edited.get(f);
  if (s === undefined || !s.includes(r.find)) {
    if (s === undefined || !s.includes(r.to)) log.push(`test rule not applied: ${r.file}: ${r.find.slice(0, 80)}`);
    continue;
  }
  edited.set(f, s.split(r.find).join(r.to));
  addImports(f, ['type Location', ...(r.imports ?? [])]);
  log.push(`${r.file}: ${r.find.slice(0, 70)}`);
}
for (const f of [...files, ...testFiles]) {
  const loose = testFiles.includes(f);
  let s = edited.get(f);
  let changed = 0;
  for (const [callee, index] of Object.entries(POSITIONAL)) {
    const re = new RegExp(`\\b${callee}\\(`, 'g');
    let m;
    while ((m = re.exec(s))) {
      if (/function\s+$/.test(s.slice(0, m.index))) continue; // the declaration
      let a = m.index + m[0].length;
      for (let k = 0; k < index && a < s.length; k++) {
        a = exprEnd(s, a);
        if (s[a] !== ',') break;
        a++;
      }
      const end = exprEnd(s, a);
      const arg = s.slice(a, end);
      const arrow = /^(\s*\(\)\s*=>\s*)(.*)$/s.exec(arg);
      const typed = arrow ? mapExpr(arrow[2], loose) : mapExpr(arg, loose);
      if (!typed) continue;
      const lead = arg.match(/^\s*/)[0];
      const rewritten = arrow ? `${arrow[1]}(${typed})` : `${lead}${typed}`;
      s = s.slice(0, a) + rewritten + s.slice(end);
      changed++;
    }
  }
  if (changed) {
    edited.set(f, s);
    log.push(`${path.relative(root, f)}: ${changed} location argument(s) in words → typed`);
  }
}

// 3. helpers called with words: `this.where(…)`-style results are typed already; `corrupt(S, words, …)`
for (const f of files) {
  let s = edited.get(f);
  const re = /\bcorrupt\(\s*([^,()]+|'[^']*'),\s*/g;
  let m;
  let out = '';
  let i = 0;
  let changed = 0;
  while ((m = re.exec(s))) {
    const start = m.index + m[0].length;
    const end = exprEnd(s, start);
    const typed = mapExpr(s.slice(start, end));
    if (!typed) continue;
    out += s.slice(i, start) + typed;
    i = end;
    changed++;
  }
  if (changed) {
    edited.set(f, out + s.slice(i));
    log.push(`${path.relative(root, f)}: ${changed} corrupt(…) location(s) → typed`);
  }
}

// 4. narrow ErrorDetail.location to Location
const errorsTs = path.join(root, 'lib/errors.ts');
let errors = fs.readFileSync(errorsTs, 'utf8');
const wordsDecl = 'location?: Location | string;';
if (!keepWords && errors.includes(wordsDecl)) {
  errors = errors
    .replace(wordsDecl, 'location?: Location;')
    .replace(
      /  \/\*\*\n   \* Where it is\. Words \("block 1234"\) are still accepted[^]*?\*\/\n/,
      '  /** Where it is (typed; `describeLocation` gives the words the message uses). */\n',
    )
    .replace(
      "const location = typeof detail.location === 'string' ? (detail.location ? parseLocation(detail.location) : undefined) : detail.location;",
      'const location = detail.location;',
    );
  log.push('lib/errors.ts: ErrorDetail.location is Location only');
}

for (const [f, s] of edited) {
  if (s !== fs.readFileSync(f, 'utf8') && !dryRun) fs.writeFileSync(f, s);
}
if (!dryRun && !keepWords) fs.writeFileSync(errorsTs, errors);

console.log(log.join('\n'));
if (left.length) console.log(`\nlocations in words left as they are (map them by hand):\n${left.join('\n')}`);
console.log(dryRun ? '\n(dry run: nothing written)' : '\nnext: npx tsc -p tsconfig.json --noEmit, then the tests');
process.exit(failed ? 1 : 0);
