/**
 * Writing TOML that people read: regexes and shell scripts as literal strings ('…', '''…''') so
 * backslashes stay as written, basic strings only when nothing else can hold the text.
 */

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

export function tomlKey(k: string): string {
  return BARE_KEY.test(k) ? k : tomlBasic(k);
}

function tomlBasic(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

/** A TOML string: literal when it can be, multi-line literal for scripts, basic otherwise. */
export function tomlString(s: string): string {
  // control characters other than tab (and newline in multi-line strings) need a basic string
  const ctl = /[\u0000-\u0008\u000b-\u001f\u007f]/;
  if (!s.includes("'") && !s.includes("\n") && !ctl.test(s) && !s.includes("\r")) return `'${s}'`;
  if (
    s.includes("\n") &&
    !s.includes("'''") &&
    !s.endsWith("'") &&
    !s.startsWith("\n") &&
    !ctl.test(s.replaceAll("\r\n", "")) &&
    !/\r(?!\n)/.test(s)
  ) {
    return `'''${s}'''`;
  }
  return tomlBasic(s);
}

export type TomlScalar = string | number | boolean;
export type TomlValue = TomlScalar | TomlScalar[];

export function tomlValue(v: TomlValue): string {
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    const items = v.map((x) => tomlValue(x));
    const one = `[${items.join(", ")}]`;
    if (one.length <= 100 && !one.includes("\n")) return one;
    return `[\n${items.map((i) => `  ${i},`).join("\n")}\n]`;
  }
  if (typeof v === "string") return tomlString(v);
  return String(v);
}

/** `key = value` lines of a table. */
export function tomlTable(header: string[] | null, entries: Array<[string, TomlValue | undefined]>): string {
  const lines: string[] = [];
  if (header) lines.push(`[${header.map(tomlKey).join(".")}]`);
  for (const [k, v] of entries) if (v !== undefined) lines.push(`${tomlKey(k)} = ${tomlValue(v)}`);
  return lines.join("\n");
}
