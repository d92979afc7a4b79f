/**
 * Strings that remember where they were written. Fail2ban's values are assembled from many
 * places (`%(x)s` interpolation, `<tag>` substitution, several files); a Text is a list of pieces,
 * each with its `file:line`, so every failregex that comes out still names the line it was
 * written on. Rule: a value that is one line takes the place of the reference that pulled it in;
 * a multi-line value keeps its own lines' places.
 */

export interface Piece {
  readonly s: string;
  readonly w: string;
}

export type Text = readonly Piece[];

export function text(s: string, w: string): Text {
  return s === "" ? [] : [{ s, w }];
}

export function flat(t: Text): string {
  if (t.length === 1) return t[0]!.s;
  let s = "";
  for (const p of t) s += p.s;
  return s;
}

/** Concatenates, merging neighbours from the same place. */
export function concat(...parts: Text[]): Text {
  const out: Piece[] = [];
  for (const part of parts) {
    for (const p of part) {
      if (p.s === "") continue;
      const last = out[out.length - 1];
      if (last && last.w === p.w) out[out.length - 1] = { s: last.s + p.s, w: p.w };
      else out.push(p);
    }
  }
  return out;
}

/** Like String.slice on the flat string. */
export function slice(t: Text, start: number, end = Number.POSITIVE_INFINITY): Text {
  const out: Piece[] = [];
  let pos = 0;
  for (const p of t) {
    const a = pos;
    const b = pos + p.s.length;
    pos = b;
    if (b <= start || a >= end) continue;
    const s = p.s.slice(Math.max(0, start - a), Math.min(p.s.length, end - a));
    if (s) out.push({ s, w: p.w });
  }
  return out;
}

/** The place of the character at `index` (or of the last piece). */
export function whereAt(t: Text, index: number): string {
  let pos = 0;
  for (const p of t) {
    pos += p.s.length;
    if (index < pos) return p.w;
  }
  return t[t.length - 1]?.w ?? "";
}

/** A one-line value takes the place `w` of what referred to it; multi-line values keep theirs. */
export function inline(t: Text, w: string): Text {
  const s = flat(t);
  if (s.includes("\n") || t.every((p) => p.w === w)) return t;
  return text(s, w);
}

/** Splits on "\n" (like Python's str.split('\n')). */
export function splitLines(t: Text): Text[] {
  const s = flat(t);
  const out: Text[] = [];
  let start = 0;
  for (;;) {
    const i = s.indexOf("\n", start);
    if (i < 0) {
      out.push(slice(t, start));
      return out;
    }
    out.push(slice(t, start, i));
    start = i + 1;
  }
}

/** Replaces every occurrence of `needle` (a plain string) with `repl`. */
export function replaceAll(t: Text, needle: string, repl: Text): Text {
  const s = flat(t);
  let i = s.indexOf(needle);
  if (i < 0) return t;
  const parts: Text[] = [];
  let last = 0;
  while (i >= 0) {
    parts.push(slice(t, last, i), inline(repl, whereAt(t, i)));
    last = i + needle.length;
    i = s.indexOf(needle, last);
  }
  parts.push(slice(t, last));
  return concat(...parts);
}

/** Python's str.strip() on a Text (whitespace at both ends). */
export function trim(t: Text): Text {
  const s = flat(t);
  const a = s.length - s.trimStart().length;
  const b = s.trimEnd().length;
  return a === 0 && b === s.length ? t : slice(t, a, b);
}

/** The place of the first non-blank character. */
export function firstWhere(t: Text): string {
  const s = flat(t);
  const i = s.search(/\S/);
  return whereAt(t, i < 0 ? 0 : i);
}
