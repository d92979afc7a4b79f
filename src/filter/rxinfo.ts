/**
 * What the matcher's fast path needs to know about a compiled (JS) regex, found once at load:
 * - its capture groups, and the same regex with the names taken off (a match array with a
 *   `groups` object costs about twice the regex run itself);
 * - for a regex anchored at the start of its text, the ASCII characters a match can start with
 *   and the literal texts it must start with, so that lines that cannot match skip the run.
 *
 * Both are over-approximations by construction: a character or a literal is left out only when
 * the regex provably cannot match a text that starts that way; anything not understood (flag
 * groups, back references) makes the answer "anything". The character set of each atom is not
 * worked out by hand: the atom's own source is run on every ASCII character with the regex's
 * flags, so classes, escapes and case folding mean exactly what the engine makes of them.
 */

interface Quant {
  min: number;
  max: number; // Infinity when unbounded
}

type Atom =
  | { k: "set"; src: string; lit: string | null; q: Quant } // one character: literal, class, escape, "."
  | { k: "zero"; caret?: boolean } // ^ $ \b \B and lookarounds: match no character
  | { k: "group"; alts: Atom[][]; q: Quant; plain: boolean } // plain: no flag modifiers
  | { k: "opaque"; q: Quant }; // back reference: anything, possibly nothing

export interface RegexInfo {
  /** The source with named groups made plain numbered ones; null when it refers to a name. */
  numbered: string | null;
  /** Name of each capture group by number (index 0 unused), null for unnamed ones. */
  groups: (string | null)[];
  /**
   * ASCII first characters (1 = can start a match) when every top-level alternative starts
   * with `^` and no match can be empty; null: no constraint.
   */
  first: Uint8Array | null;
  /** Literal texts one of which every match starts with; null: no constraint. */
  lits: string[] | null;
  /**
   * The numbered source without its leading `^`, for a sticky regex run at an offset of a
   * longer string: set when the regex is one `^`-anchored alternative with no lookbehind, no
   * \b or \B and no other `^` (nothing in it looks at what precedes the offset) and no "m" flag.
   */
  stickySource: string | null;
  /**
   * Some capture can end with a value that depends on the engine: a capture inside a group
   * repeated more than once or optional with a body that can match nothing, or inside a
   * lookbehind. JavaScript resets such captures per iteration (and refuses empty iterations),
   * PCRE keeps the last value; elsewhere the two backtracking engines give the same captures.
   */
  unstableCaptures: boolean;
}

const ONE: Quant = { min: 1, max: 1 };
const SYNTAX_ESC = new Set("^$\\.*+?()[]{}|/-".split(""));

class Parser {
  i = 0;
  groups: (string | null)[] = [null];
  numbered = "";
  namedRef = false;
  lookBehind = false;
  innerCaret = false;
  unstableCaptures = false;

  constructor(readonly src: string) {}

  /** Alternatives up to `)` or the end. */
  alts(depth: number): Atom[][] {
    const out: Atom[][] = [[]];
    const s = this.src;
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (c === ")") {
        if (depth === 0) throw new Error("unbalanced )");
        return out;
      }
      if (c === "|") {
        this.numbered += c;
        this.i++;
        out.push([]);
        continue;
      }
      const seq = out[out.length - 1]!;
      seq.push(this.atom(depth, seq.length === 0));
    }
    if (depth > 0) throw new Error("missing )");
    return out;
  }

  private quant(): Quant {
    const s = this.src;
    const c = s[this.i];
    let q: Quant = ONE;
    if (c === "*") q = { min: 0, max: Infinity };
    else if (c === "+") q = { min: 1, max: Infinity };
    else if (c === "?") q = { min: 0, max: 1 };
    else if (c === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(s.slice(this.i));
      if (!m) return ONE;
      const min = Number(m[1]);
      q = { min, max: m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]) };
      this.numbered += m[0];
      this.i += m[0].length;
      if (s[this.i] === "?") {
        this.numbered += "?";
        this.i++;
      }
      return q;
    } else return ONE;
    this.numbered += c;
    this.i++;
    if (s[this.i] === "?") {
      this.numbered += "?";
      this.i++;
    }
    return q;
  }

  private atom(depth: number, first: boolean): Atom {
    const s = this.src;
    const c = s[this.i]!;
    if (c === "^" || c === "$") {
      if (c === "^" && !(depth === 0 && first)) this.innerCaret = true;
      this.numbered += c;
      this.i++;
      return c === "^" ? { k: "zero", caret: true } : { k: "zero" };
    }
    if (c === "(") {
      let plain = true;
      let zero = false;
      let head: string;
      const rest = s.slice(this.i, this.i + 40);
      let m: RegExpExecArray | null;
      let behind = false;
      const capsBefore = this.groups.length;
      if ((m = /^\(\?<([A-Za-z_$][\w$]*)>/.exec(rest))) {
        this.groups.push(m[1]!);
        head = "(";
        this.i += m[0].length;
      } else if (/^\(\?(?:<=|<!)/.test(rest)) {
        this.lookBehind = true;
        behind = true;
        zero = true;
        head = rest.slice(0, 4);
        this.i += 4;
      } else if (/^\(\?[=!]/.test(rest)) {
        zero = true;
        head = rest.slice(0, 3);
        this.i += 3;
      } else if (rest.startsWith("(?:")) {
        head = "(?:";
        this.i += 3;
      } else if ((m = /^\(\?[a-z]*(?:-[a-z]*)?:/.exec(rest))) {
        plain = false;
        head = m[0];
        this.i += m[0].length;
      } else if (rest.startsWith("(?")) {
        throw new Error("unknown group");
      } else {
        this.groups.push(null);
        head = "(";
        this.i++;
      }
      this.numbered += head;
      const alts = this.alts(depth + 1);
      this.numbered += ")";
      this.i++; // ")"
      const q = this.quant();
      if (this.groups.length > capsBefore && (behind || q.max > 1 || (q.min === 0 && alts.some(nullableSeq))))
        this.unstableCaptures = true;
      if (zero) return { k: "zero" };
      return { k: "group", alts, q, plain };
    }
    if (c === "[") {
      let j = this.i + 1;
      if (s[j] === "^") j++;
      if (s[j] === "]") j++; // cannot happen under "u", kept for safety
      for (; j < s.length && s[j] !== "]"; j++) if (s[j] === "\\") j++;
      if (j >= s.length) throw new Error("unterminated class");
      const src = s.slice(this.i, j + 1);
      this.numbered += src;
      this.i = j + 1;
      return { k: "set", src, lit: null, q: this.quant() };
    }
    if (c === "\\") {
      const d = s[this.i + 1];
      if (d === undefined) throw new Error("trailing backslash");
      let len = 2;
      let lit: string | null = null;
      if (d === "b" || d === "B") {
        this.lookBehind = true;
        this.numbered += s.slice(this.i, this.i + 2);
        this.i += 2;
        return { k: "zero" };
      }
      if (d === "k") {
        const m = /^\\k<[^>]*>/.exec(s.slice(this.i));
        this.namedRef = true;
        const t = m ? m[0] : "\\k";
        this.numbered += t;
        this.i += t.length;
        return { k: "opaque", q: this.quant() };
      }
      if (d >= "1" && d <= "9") {
        const m = /^\\\d+/.exec(s.slice(this.i))!;
        this.numbered += m[0];
        this.i += m[0].length;
        return { k: "opaque", q: this.quant() };
      }
      if (d === "x") {
        len = 4;
        lit = String.fromCharCode(Number.parseInt(s.slice(this.i + 2, this.i + 4), 16));
      } else if (d === "u") {
        if (s[this.i + 2] === "{") {
          const close = s.indexOf("}", this.i);
          len = close + 1 - this.i;
          lit = String.fromCodePoint(Number.parseInt(s.slice(this.i + 3, close), 16));
        } else {
          len = 6;
          lit = String.fromCharCode(Number.parseInt(s.slice(this.i + 2, this.i + 6), 16));
        }
      } else if (d === "c") len = 3;
      else if (d === "p" || d === "P") {
        const close = s.indexOf("}", this.i);
        len = close + 1 - this.i;
      } else if (SYNTAX_ESC.has(d)) lit = d;
      else if (d === "t") lit = "\t";
      else if (d === "n") lit = "\n";
      else if (d === "r") lit = "\r";
      else if (d === "f") lit = "\f";
      else if (d === "v") lit = "\v";
      else if (d === "0") lit = "\0";
      const src = s.slice(this.i, this.i + len);
      this.numbered += src;
      this.i += len;
      return { k: "set", src, lit, q: this.quant() };
    }
    if (c === "*" || c === "+" || c === "?" || c === "{") throw new Error(`nothing to repeat: ${c}`);
    const ch = String.fromCodePoint(s.codePointAt(this.i)!);
    this.i += ch.length;
    this.numbered += ch;
    return { k: "set", src: ch, lit: c === "." ? null : ch, q: this.quant() };
  }
}

/** A sequence that can match the empty text (back references counted as such). */
function nullableSeq(seq: Atom[]): boolean {
  return seq.every(nullableAtom);
}

function nullableAtom(a: Atom): boolean {
  if (a.k === "zero" || a.k === "opaque") return true;
  if (a.q.min === 0) return true;
  return a.k === "group" && a.alts.some(nullableSeq);
}

const ASCII = Array.from({ length: 128 }, (_, i) => String.fromCharCode(i));

class Analyzer {
  private readonly cache = new Map<string, Uint8Array>();
  constructor(private readonly flags: string) {}

  /** ASCII characters the one-character atom `src` matches, run by the engine itself. */
  set(src: string): Uint8Array {
    let r = this.cache.get(src);
    if (r) return r;
    r = new Uint8Array(128);
    const re = new RegExp(`^(?:${src})$`, this.flags);
    for (let c = 0; c < 128; c++) if (re.test(ASCII[c]!)) r[c] = 1;
    this.cache.set(src, r);
    return r;
  }

  /** First characters of a sequence: null = any. */
  firstSeq(seq: Atom[], from = 0): { set: Uint8Array | null; nullable: boolean } {
    const acc = new Uint8Array(128);
    for (let k = from; k < seq.length; k++) {
      const a = this.firstAtom(seq[k]!);
      if (a.set === null) return { set: null, nullable: true };
      for (let c = 0; c < 128; c++) acc[c]! |= a.set[c]!;
      if (!a.nullable) return { set: acc, nullable: false };
    }
    return { set: acc, nullable: true };
  }

  private firstAtom(a: Atom): { set: Uint8Array | null; nullable: boolean } {
    if (a.k === "zero") return { set: new Uint8Array(128), nullable: true };
    if (a.k === "opaque") return { set: null, nullable: true };
    if (a.k === "set") return { set: this.set(a.src), nullable: a.q.min === 0 };
    if (!a.plain) return { set: null, nullable: true };
    const acc = new Uint8Array(128);
    let nullable = a.q.min === 0;
    for (const alt of a.alts) {
      const r = this.firstSeq(alt);
      if (r.set === null) return { set: null, nullable: true };
      for (let c = 0; c < 128; c++) acc[c]! |= r.set[c]!;
      nullable ||= r.nullable;
    }
    return { set: acc, nullable };
  }

  /** Literal prefixes of a sequence; `done` false when the sequence goes on past them. */
  litSeq(seq: Atom[], from = 0): Array<{ s: string; done: boolean }> | null {
    let cur: Array<{ s: string; done: boolean }> = [{ s: "", done: true }];
    const stop = () => {
      for (const e of cur) e.done = false;
    };
    for (let k = from; k < seq.length; k++) {
      if (!cur.some((e) => e.done)) break;
      const a = seq[k]!;
      if (a.k === "zero") continue;
      if (a.k === "opaque") {
        stop();
        break;
      }
      if (a.k === "set") {
        const lit = a.lit !== null && this.isLiteral(a.lit) ? a.lit : null;
        if (lit === null || a.q.min === 0) {
          stop();
          break;
        }
        const add = lit.repeat(Math.min(a.q.min, 64));
        for (const e of cur) if (e.done) e.s += add;
        if (a.q.max !== a.q.min || a.q.min > 64) stop();
        continue;
      }
      if (!a.plain || a.q.min === 0) {
        stop();
        break;
      }
      const sub: Array<{ s: string; done: boolean }> = [];
      for (const alt of a.alts) {
        const r = this.litSeq(alt);
        if (r === null) return null;
        sub.push(...r);
      }
      const next: Array<{ s: string; done: boolean }> = [];
      for (const e of cur) {
        if (!e.done) next.push(e);
        else for (const t of sub) next.push({ s: e.s + t.s, done: t.done && a.q.max === 1 });
      }
      if (next.length > 16) return null;
      cur = next;
      if (a.q.max !== 1) stop();
    }
    return cur;
  }

  /** A literal character matches itself only (case folding can pair ASCII letters with others). */
  private isLiteral(ch: string): boolean {
    if (!this.flags.includes("i")) return true;
    return ch.length === 1 && ch.charCodeAt(0) < 128 && !/[A-Za-z]/.test(ch);
  }
}

/** Facts about a compiled regex for the matcher's fast path. */
export function regexInfo(re: RegExp): RegexInfo {
  const p = new Parser(re.source);
  let alts: Atom[][];
  try {
    alts = p.alts(0);
  } catch {
    return {
      numbered: null,
      groups: [null],
      first: null,
      lits: null,
      stickySource: null,
      unstableCaptures: true,
    };
  }
  const flags = re.flags.replace(/[gyd]/g, "");
  const info: RegexInfo = {
    numbered: p.namedRef ? null : p.numbered,
    groups: p.groups,
    first: null,
    lits: null,
    stickySource: null,
    unstableCaptures: p.unstableCaptures,
  };
  if (
    info.numbered !== null &&
    !p.lookBehind &&
    !p.innerCaret &&
    !flags.includes("m") &&
    alts.length === 1 &&
    alts[0]![0]?.k === "zero" &&
    alts[0]![0].caret === true &&
    info.numbered.startsWith("^")
  )
    info.stickySource = info.numbered.slice(1);
  // Prefilters: only when every top-level alternative is anchored at the text start.
  if (flags.includes("m")) return info;
  if (!alts.every((alt) => alt[0]?.k === "zero" && alt[0].caret === true)) return info;
  const an = new Analyzer(flags);
  const first = new Uint8Array(128);
  let lits: string[] | null = [];
  for (const alt of alts) {
    const r = an.firstSeq(alt, 1);
    if (r.set === null || r.nullable) return info;
    for (let c = 0; c < 128; c++) first[c]! |= r.set[c]!;
    const l = an.litSeq(alt, 1);
    if (l === null || lits === null || l.some((e) => e.s === "")) lits = null;
    else for (const e of l) lits.push(e.s);
  }
  info.first = first;
  info.lits = lits === null ? null : [...new Set(lits)];
  return info;
}
