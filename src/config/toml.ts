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

/**
 * Finds `line:col` (1-based) of a key path (["jails", "sshd", "maxretry"]) in TOML source.
 * With `item`, the position of that text inside the value (for list entries). Falls back to
 * the nearest enclosing table header, then to line 1.
 */
export function locate(text: string, path: readonly string[], item?: string): { line: number; col: number } {
  const lines = text.split("\n");
  let table: string[] = [];
  let best = { line: 1, col: 1 };
  let bestDepth = -1;
  const header = /^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$/;
  const assign = /^(\s*)((?:"[^"]*"|'[^']*'|[A-Za-z0-9_.\- ]+?))\s*=/;
  for (let i = 0; i < lines.length; i++) {
    const ln = lines[i]!;
    const h = header.exec(ln);
    if (h) {
      table = splitDotted(h[1]!);
      const depth = prefixDepth(table, path);
      if (depth === table.length && depth > bestDepth) {
        best = { line: i + 1, col: ln.indexOf("[") + 1 };
        bestDepth = depth;
      }
      continue;
    }
    const a = assign.exec(ln);
    if (!a) continue;
    const full = [...table, ...splitDotted(a[2]!)];
    const depth = prefixDepth(full, path);
    if (depth === full.length && depth > bestDepth) {
      best = { line: i + 1, col: a[1]!.length + 1 };
      bestDepth = depth;
      if (depth === path.length && item !== undefined) {
        const needle = item.slice(0, 60);
        for (let j = i; j < lines.length; j++) {
          if (j > i && (header.test(lines[j]!) || assign.test(lines[j]!))) break;
          const at = lines[j]!.indexOf(needle);
          if (at >= 0) return { line: j + 1, col: at + 1 };
        }
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
