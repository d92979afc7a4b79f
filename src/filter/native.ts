/**
 * PCRE2 (the system's libpcre2-8, JIT-compiled) for scan's hot loop: it matches bytes where
 * they were read, and reports captures as offsets, so a line that matches nothing costs no
 * string and no allocation, and a match costs strings for its named groups only. JavaScript's
 * own engine stays the reference: a regex runs here only when its PCRE2 form provably matches
 * ASCII text exactly as the JavaScript one does (see pcreSource), and any PCRE2 error (JIT
 * stack, match limit) sends the line back to the JavaScript path. No libpcre2 (or
 * FAIL2TS_NO_PCRE=1): everything runs in JavaScript, with the same results.
 */
import { dlopen, FFIType, type Pointer, ptr, toArrayBuffer } from "bun:ffi";
import { type RegexInfo, regexInfo } from "./rxinfo.ts";
import { HOST_PATTERNS } from "./tags.ts";
import { compilePyRegex } from "./translate.ts";

const CASELESS = 0x8;
const DOLLAR_ENDONLY = 0x10;
const DOTALL = 0x20;
const JIT_COMPLETE = 1;
/** pcre2_jit_match's answer when the regex does not match. */
export const NO_MATCH = -1;
/** PCRE2_UNSET's low 32 bits (offsets are read as the low halves of 64-bit values). */
export const UNSET = 0xffffffff;

function load() {
  if (process.env.FAIL2TS_NO_PCRE === "1") return null;
  for (const name of ["libpcre2-8.so.0", "libpcre2-8.so", "libpcre2-8.0.dylib", "libpcre2-8.dylib"]) {
    try {
      return dlopen(name, {
        pcre2_compile_8: {
          args: [FFIType.ptr, FFIType.u64, FFIType.u32, FFIType.ptr, FFIType.ptr, FFIType.ptr],
          returns: FFIType.ptr,
        },
        pcre2_jit_compile_8: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
        pcre2_match_data_create_from_pattern_8: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.ptr },
        pcre2_get_ovector_pointer_8: { args: [FFIType.ptr], returns: FFIType.ptr },
        pcre2_get_ovector_count_8: { args: [FFIType.ptr], returns: FFIType.u32 },
        pcre2_jit_match_8: {
          args: [FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.u64, FFIType.u32, FFIType.ptr, FFIType.ptr],
          returns: FFIType.i32,
        },
      }).symbols;
    } catch {
      // not this name
    }
  }
  return null;
}

let lib: ReturnType<typeof load> | undefined;

function pcre(): NonNullable<ReturnType<typeof load>> | null {
  if (lib === undefined) lib = load();
  return lib;
}

/** True when PCRE2 can be used here. */
export function nativeAvailable(): boolean {
  return pcre() !== null;
}

export interface NativeRegex {
  /** Runs on bytes [at, at + len) of the memory at `base` (a pointer from `ptr`); PCRE2's rc. */
  match(base: number, at: number, len: number): number;
  /**
   * Offsets of the last match, relative to `at`, as the low halves of PCRE2's 64-bit values:
   * group k from ov[4k] to ov[4k + 2]; ov[4k] is UNSET when the group took no part.
   */
  readonly ov: Uint32Array;
  /** PCRE2's compiled code, match data and ovector, for native callers (src/scan/engine.ts). */
  readonly code: Pointer;
  readonly md: Pointer;
  readonly ovp: Pointer;
}

/** The address of pcre2_jit_match_8, for native callers; null without PCRE2. */
export function jitMatchAddress(): Pointer | null {
  const L = pcre();
  return L === null ? null : (L.pcre2_jit_match_8 as unknown as { ptr: Pointer }).ptr;
}

const ESCAPES = new Set("dDwWsSbBtnrf".split(""));
const PUNCT = /[\^$\\.*+?()[\]{}|/\-,:=!<>#&~'"%@`;_ ]/;

/**
 * The PCRE2 source that matches pure ASCII text exactly as the JavaScript regex `source`
 * (u-mode syntax, as the translator writes it, run without "u" on ASCII text; no "m") does,
 * with DOLLAR_ENDONLY; null when that is not certain. What differs is rewritten: "." (no CR
 * in JavaScript), \v (a class in PCRE2), \0. What cannot be made equal is refused: back
 * references, \u \p \c \k escapes, empty classes, "[" inside a class (POSIX classes in PCRE2),
 * captures whose value depends on the engine (RegexInfo.unstableCaptures), non-ASCII.
 */
export function pcreSource(source: string, flags: string, info: RegexInfo): string | null {
  if (info.unstableCaptures || flags.includes("m")) return null;
  if (/[^\x00-\x7f]/.test(source)) return null;
  const dotAll = flags.includes("s");
  let out = "";
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === "\\") {
      const d = source[i + 1];
      if (d === undefined) return null;
      i++;
      if (ESCAPES.has(d)) out += `\\${d}`;
      else if (d === "v") out += "\\x0b";
      else if (d === "0") {
        if (/[0-9]/.test(source[i + 1] ?? "")) return null;
        out += "\\x00";
      } else if (d === "x") {
        const h = source.slice(i + 1, i + 3);
        if (!/^[0-7][0-9a-fA-F]$/.test(h)) return null;
        out += `\\x${h}`;
        i += 2;
      } else if (PUNCT.test(d)) out += `\\${d}`;
      else return null;
      continue;
    }
    if (inClass) {
      if (c === "[") return null;
      if (c === "]") inClass = false;
      out += c;
      continue;
    }
    if (c === "[") {
      const body = source.slice(i + 1, i + 3);
      if (body.startsWith("]") || body === "^]") return null;
      inClass = true;
      out += c;
      continue;
    }
    if (c === ".") {
      out += dotAll ? "." : "[^\\n\\r]";
      continue;
    }
    if (c === "(" && source[i + 1] === "?") {
      // (?: (?= (?! (?<= (?<! and flag groups: the same in PCRE2; named groups are not expected
      if (source[i + 2] === "<" && source[i + 3] !== "=" && source[i + 3] !== "!") return null;
      if (source[i + 2] === "P" || source[i + 2] === "#" || source[i + 2] === "(") return null;
    }
    out += c;
  }
  return inClass ? null : out;
}

const cache = new Map<string, NativeRegex | null>();

/** The PCRE2 form of a JavaScript regex (numbered source and flags), or null (see pcreSource). */
export function nativeRegex(source: string, flags: string, info: RegexInfo): NativeRegex | null {
  const key = `${flags}/${source}`;
  const known = cache.get(key);
  if (known !== undefined) return known;
  const rx = compileNative(source, flags, info);
  cache.set(key, rx);
  return rx;
}

/** What a group `(.+)` closing a regex is in PCRE2 form (see pcreSource). */
const CONTENT_TAIL = "([^\\n\\r]+)$";

/**
 * A prefregex without the content group that closes it, `X([^\n\r]+)$` → `X(?=[^\n\r])`, or
 * null when `content` is not that group. On a line with no CR (nor LF) the two match alike, with
 * the same groups; the content then runs from the match's end to the line's. For scan's engine,
 * which then does not run PCRE2 through every line's content a second time.
 */
export function nativeHead(
  source: string,
  flags: string,
  info: RegexInfo,
  content: number,
): NativeRegex | null {
  if (content !== info.groups.length - 1) return null; // the last group: no other is renumbered
  const key = `head ${flags}/${source}`;
  const known = cache.get(key);
  if (known !== undefined) return known;
  const src = pcreSource(source, flags, info);
  const rx =
    src?.endsWith(CONTENT_TAIL) === true
      ? compilePcre(`${src.slice(0, -CONTENT_TAIL.length)}(?=[^\\n\\r])`, flags, info.groups.length - 1)
      : null;
  cache.set(key, rx);
  return rx;
}

function compileNative(source: string, flags: string, info: RegexInfo): NativeRegex | null {
  const src = pcreSource(source, flags, info);
  return src === null ? null : compilePcre(atomicHosts(src), flags, info.groups.length);
}

let hostForms: string[] | null = null;

/** `<HOST>` and `<ADDR>` as they appear in PCRE2 sources (pcreSource of their numbered forms). */
function hostsInPcre(): string[] {
  if (hostForms === null) {
    hostForms = [];
    for (const py of HOST_PATTERNS) {
      const re = compilePyRegex(py);
      const info = regexInfo(re);
      const src = info.numbered === null ? null : pcreSource(info.numbered, re.flags.replace("u", ""), info);
      if (src !== null) hostForms.push(src);
    }
  }
  return hostForms;
}

/**
 * `<HOST> ` (or `<ADDR> `: followed by a space that must be there) made atomic, with a
 * lookahead for the space: `(?>H(?= )) `. Same matches, same captures: no match of H holds a
 * space, so every match of H followed by a space ends at the same place, the first space; the
 * alternative H takes there (the first one in order that ends there) is the one the plain form
 * would keep, since what follows depends on that place only (with no back reference or
 * conditional to read H's groups). What changes is the cost of a line that then fails: PCRE2 no
 * longer tries every shorter name H could match, one character at a time (sshd's "Failed
 * password" regex on the usual line: its first alternative fails in a third less time, the
 * whole regex takes 15% less).
 */
export function atomicHosts(src: string): string {
  if (/\\[1-9k]|\(\?\(|\(\?[a-zA-Z-]+[:)]/.test(src)) return src; // back references, conditionals, flags
  let out = src;
  for (const h of hostsInPcre()) {
    const [first, ...after] = out.split(`${h} `);
    // each piece follows an "H "; a space made optional (" ?", " *", " {0,1}") is left as it is
    out =
      first! + after.map((rest) => (/^[*?{]/.test(rest) ? `${h} ${rest}` : `(?>${h}(?= )) ${rest}`)).join("");
  }
  return out;
}

/** A PCRE2 regex, JIT-compiled, with at least `groups` ovector pairs; null if it cannot be. */
function compilePcre(src: string, flags: string, groups: number): NativeRegex | null {
  const L = pcre();
  if (L === null) return null;
  const bytes = Buffer.from(`${src}\0`, "latin1");
  const err = new Int32Array(1);
  const errAt = new BigUint64Array(1);
  const opts = DOLLAR_ENDONLY | (flags.includes("i") ? CASELESS : 0) | (flags.includes("s") ? DOTALL : 0);
  const code = L.pcre2_compile_8(ptr(bytes), BigInt(bytes.length - 1), opts, ptr(err), ptr(errAt), null);
  if (!code) return null; // e.g. a lookbehind of variable length (older PCRE2)
  if (L.pcre2_jit_compile_8(code, JIT_COMPLETE) !== 0) return null;
  const md = L.pcre2_match_data_create_from_pattern_8(code, null);
  if (!md) return null;
  const pairs = L.pcre2_get_ovector_count_8(md);
  if (pairs < groups) return null;
  const ovp = L.pcre2_get_ovector_pointer_8(md);
  if (!ovp) return null;
  const ov = new Uint32Array(toArrayBuffer(ovp, 0, pairs * 16));
  const jitMatch = L.pcre2_jit_match_8;
  return {
    ov,
    code: code as Pointer,
    md: md as Pointer,
    ovp: ovp as Pointer,
    match: (base, at, len) => jitMatch(code, base + at, len, 0, 0, md, null),
  };
}
