/**
 * TOML reading with positions: smol-toml reports line/column for syntax errors; for errors
 * found later (a bad value), `locate` finds the line of a key path in the source text so the
 * message can still say file:line:col.
 */
import { parse, TomlError } from "smol-toml";
import { Fail2tsError } from "../util/errors.ts";

export type TomlTable = Record<string, unknown>;

export function parseToml(text: string, file: string): TomlTable {
  try {
    return parse(text) as TomlTable;
  } catch (err) {
    if (err instanceof TomlError) {
      const msg = err.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      throw new Fail2tsError("config", msg, `${file}:${err.line}:${err.column}`);
    }
    throw err;
  }
}

function unquoteKey(k: string): string {
  const t = k.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) return t.slice(1, -1);
  return t;
}

function splitDotted(key: string): string[] {
  const out: string[] = [];
  let cur = "";
  let q: string | null = null;
  for (const ch of key) {
    if (q) {
      if (ch === q) q = null;
      cur += ch;
    } else if (ch === '"' || ch === "'") {
      q = ch;
      cur += ch;
    } else if (ch === ".") {
      out.push(unquoteKey(cur));
      cur = "";
    } else cur += ch;
  }
  out.push(unquoteKey(cur));
  return out;
}

interface KeyEntry {
  path: string[];
  line: number;
  col: number;
  header: boolean;
}

interface KeyIndex {
  lines: string[];
  entries: KeyEntry[];
  /** Per line: 1 when it starts a table or a key (where a multi-line value ends). */
  boundary: Uint8Array;
}

const HEADER = /^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$/;
const ASSIGN = /^(\s*)((?:"[^"]*"|'[^']*'|[A-Za-z0-9_.\- ]+?))\s*=/;
const INDEXES = new Map<string, KeyIndex>();

/** Every table header and key of a TOML text with its position, computed once per text. */
function keyIndex(text: string): KeyIndex {
  let idx = INDEXES.get(text);
  if (idx) return idx;
  const lines = text.split("\n");
  const entries: KeyEntry[] = [];
  const boundary = new Uint8Array(lines.length);
  let table: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const ln = lines[i]!;
    const h = HEADER.exec(ln);
    if (h) {
      table = splitDotted(h[1]!);
      entries.push({ path: table, line: i + 1, col: ln.indexOf("[") + 1, header: true });
      boundary[i] = 1;
      continue;
    }
    const a = ASSIGN.exec(ln);
    if (!a) continue;
    entries.push({
      path: [...table, ...splitDotted(a[2]!)],
      line: i + 1,
      col: a[1]!.length + 1,
      header: false,
    });
    boundary[i] = 1;
  }
  idx = { lines, entries, boundary };
  if (INDEXES.size >= 64) INDEXES.clear();
  INDEXES.set(text, idx);
  return idx;
}

/**
 * Finds `line:col` (1-based) of a key path (["jails", "sshd", "maxretry"]) in TOML source.
 * With `item`, the position of that text inside the value (for list entries). Falls back to
 * the nearest enclosing table header, then to line 1.
 */
export function locate(text: string, path: readonly string[], item?: string): { line: number; col: number } {
  const { lines, entries, boundary } = keyIndex(text);
  let best = { line: 1, col: 1 };
  let bestDepth = -1;
  for (const e of entries) {
    const depth = prefixDepth(e.path, path);
    if (depth !== e.path.length || depth <= bestDepth) continue;
    best = { line: e.line, col: e.col };
    bestDepth = depth;
    if (!e.header && depth === path.length && item !== undefined) {
      const needle = item.slice(0, 60);
      for (let j = e.line - 1; j < lines.length; j++) {
        if (j > e.line - 1 && boundary[j]) break;
        const at = lines[j]!.indexOf(needle);
        if (at >= 0) return { line: j + 1, col: at + 1 };
      }
    }
  }
  return best;
}

function prefixDepth(a: readonly string[], b: readonly string[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** `file:line:col` of a key path, for error messages. */
export function whereOf(text: string, file: string, path: readonly string[], item?: string): string {
  const { line, col } = locate(text, path, item);
  return `${file}:${line}:${col}`;
}
