/**
 * Python `re` syntax (what Fail2ban filters are written in) → JavaScript RegExp, once at load.
 * Compiled with the `u` flag so that anything left untranslated fails loudly instead of
 * silently meaning something else (without `u`, JS reads `\Z` as the letter Z).
 */
import { Fail2tsError } from "../util/errors.ts";

export interface Translated {
  source: string;
  /** JS flags, without `u` (added at compile time). */
  flags: string;
}

const SYNTAX = new Set("^$\\.*+?()[]{}|/".split(""));
const CLASS_ESCAPES = new Set("dDwWsS".split(""));
const KEEP_LETTER_ESCAPES = new Set("dDwWsSbBnrtfvx0".split(""));

function hexEscape(ch: string): string {
  const cp = ch.codePointAt(0)!;
  return cp < 0x80 ? `\\x${cp.toString(16).padStart(2, "0")}` : `\\u{${cp.toString(16)}}`;
}

function fail(msg: string, regex: string, at: number): never {
  throw new Fail2tsError("regex", `${msg} at offset ${at} in ${JSON.stringify(regex)}`);
}

/** Translates one Python regex. Throws Fail2tsError("regex") for what JS cannot express. */
export function translateRegex(py: string): Translated {
  const flags = new Set<string>();
  let out = "";
  let i = 0;
  const n = py.length;
  // Global flags: `(?i)`, `(?ims)` anywhere at top level (Python < 3.11 allowed them anywhere).
  let verbose = false;
  for (const m of py.matchAll(/(?<!\\)\(\?([aiLmsux]+)\)/g)) if (m[1]!.includes("x")) verbose = true;

  let inClass = false;
  let classItems = 0; // items emitted since `[` (or `[^`)
  let prevClassEscape = false; // last class item was \w, \d, ...
  let afterQuantifier = false;

  while (i < n) {
    const c = py[i]!;
    if (!inClass && verbose) {
      if (/\s/.test(c)) {
        i++;
        continue;
      }
      if (c === "#") {
        while (i < n && py[i] !== "\n") i++;
        continue;
      }
    }
    if (c === "\\") {
      const d = py[i + 1];
      if (d === undefined) fail("trailing backslash", py, i);
      i += 2;
      afterQuantifier = false;
      if (inClass) {
        classItems++;
        prevClassEscape = CLASS_ESCAPES.has(d);
        if (
          KEEP_LETTER_ESCAPES.has(d) ||
          d === "u" ||
          d === "\\" ||
          d === "]" ||
          d === "[" ||
          d === "-" ||
          d === "^"
        ) {
          out += `\\${d}`;
        } else if (d === "a") out += "\\x07";
        else if (d === "U") {
          out += `\\u{${py.slice(i, i + 8).replace(/^0+(?=.)/, "")}}`;
          i += 8;
        } else if (/[A-Za-z]/.test(d)) fail(`bad escape \\${d}`, py, i - 2);
        else out += hexEscape(d);
        continue;
      }
      if (d === "A") out += "(?<![\\s\\S])";
      else if (d === "Z" || d === "z") out += "(?![\\s\\S])";
      else if (/[1-9]/.test(d)) {
        let num = d;
        while (i < n && /[0-9]/.test(py[i]!) && num.length < 2) num += py[i++];
        out += `\\${num}`;
      } else if (KEEP_LETTER_ESCAPES.has(d) || d === "u") out += `\\${d}`;
      else if (d === "a") out += "\\x07";
      else if (d === "U") {
        out += `\\u{${py.slice(i, i + 8).replace(/^0+(?=.)/, "")}}`;
        i += 8;
      } else if (/[A-Za-z]/.test(d)) fail(`bad escape \\${d}`, py, i - 2);
      else if (SYNTAX.has(d)) out += `\\${d}`;
      else out += hexEscape(d);
      continue;
    }
    if (inClass) {
      if (c === "]" && classItems > 0) {
        inClass = false;
        out += "]";
        i++;
        continue;
      }
      if (c === "]" || c === "[") {
        out += `\\${c}`;
        classItems++;
        prevClassEscape = false;
        i++;
        continue;
      }
      if (c === "-") {
        const next = py[i + 1];
        const nextIsClassEscape = next === "\\" && CLASS_ESCAPES.has(py[i + 2] ?? "");
        if (prevClassEscape || nextIsClassEscape || next === "]" || classItems === 0) out += "\\-";
        else out += "-";
        prevClassEscape = false;
        classItems++;
        i++;
        continue;
      }
      classItems++;
      prevClassEscape = false;
      out += c === "/" ? "\\/" : c;
      i++;
      continue;
    }
    if (c === "[") {
      inClass = true;
      classItems = 0;
      prevClassEscape = false;
      out += "[";
      i++;
      if (py[i] === "^") {
        out += "^";
        i++;
      }
      afterQuantifier = false;
      continue;
    }
    if (c === "(") {
      afterQuantifier = false;
      if (py[i + 1] !== "?") {
        out += "(";
        i++;
        continue;
      }
      const rest = py.slice(i + 2);
      let m: RegExpExecArray | null;
      if ((m = /^P<([A-Za-z_]\w*)>/.exec(rest))) {
        out += `(?<${m[1]}>`;
        i += 2 + m[0].length;
      } else if ((m = /^P=([A-Za-z_]\w*)\)/.exec(rest))) {
        out += `\\k<${m[1]}>`;
        i += 2 + m[0].length;
      } else if (rest.startsWith("#")) {
        const end = py.indexOf(")", i);
        if (end < 0) fail("unterminated comment", py, i);
        i = end + 1;
      } else if ((m = /^([aiLmsux]+)\)/.exec(rest))) {
        for (const f of m[1]!) flags.add(f);
        i += 2 + m[0].length;
      } else if ((m = /^([aiLmsux]*)(?:-([imsx]+))?:/.exec(rest))) {
        const on = m[1]!.replace(/[aLux]/g, "");
        const off = (m[2] ?? "").replace(/x/g, "");
        if (m[1]!.includes("x")) fail("scoped verbose flag (?x:…) is not supported", py, i);
        out += on || off ? `(?${on}${off ? `-${off}` : ""}:` : "(?:";
        i += 2 + m[0].length;
      } else if (/^(?:[:=!]|<=|<!)/.test(rest)) {
        const len = rest[0] === "<" ? 2 : 1;
        out += `(?${rest.slice(0, len)}`;
        i += 2 + len;
      } else if (rest.startsWith(">")) {
        fail("atomic group (?>…) has no JavaScript equivalent", py, i);
      } else if (rest.startsWith("(")) {
        fail("conditional group (?(…)…) has no JavaScript equivalent", py, i);
      } else if ((m = /^<([A-Za-z_]\w*)>/.exec(rest))) {
        out += `(?<${m[1]}>`;
        i += 2 + m[0].length;
      } else {
        fail("unknown group syntax", py, i);
      }
      continue;
    }
    if (c === "{") {
      const m = /^\{(\d*)(?:(,)(\d*))?\}/.exec(py.slice(i));
      if (m && (m[1] !== "" || m[3] !== undefined) && !(m[1] === "" && m[3] === "")) {
        out += `{${m[1] === "" ? "0" : m[1]}${m[2] ?? ""}${m[3] ?? ""}}`;
        i += m[0].length;
        if (py[i] === "+") fail("possessive quantifier has no JavaScript equivalent", py, i);
        afterQuantifier = true;
        continue;
      }
      out += "\\{";
      i++;
      afterQuantifier = false;
      continue;
    }
    if (c === "}" || c === "]") {
      out += `\\${c}`;
      i++;
      afterQuantifier = false;
      continue;
    }
    if (c === "*" || c === "+" || c === "?") {
      if (afterQuantifier && c === "+") fail("possessive quantifier has no JavaScript equivalent", py, i);
      out += c;
      i++;
      if (c !== "?" || !afterQuantifier) {
        afterQuantifier = true;
        if (py[i] === "?") {
          out += "?";
          i++;
          afterQuantifier = false;
        }
      } else afterQuantifier = false;
      continue;
    }
    if (c === "/") out += "\\/";
    else out += c;
    afterQuantifier = false;
    i++;
  }
  if (inClass) fail("unterminated character set", py, n);
  let jsFlags = "";
  if (flags.has("i")) jsFlags += "i";
  if (flags.has("m")) jsFlags += "m";
  if (flags.has("s")) jsFlags += "s";
  return { source: out, flags: jsFlags };
}

/** Translates and compiles; `extraFlags` e.g. "m" for multi-line buffers. */
export function compilePyRegex(py: string, extraFlags = ""): RegExp {
  const t = translateRegex(py);
  const flags = [...new Set((t.flags + extraFlags + "u").split(""))].join("");
  try {
    return new RegExp(t.source, flags);
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/^Invalid regular expression: /, "") : String(err);
    throw new Fail2tsError("regex", `invalid regex ${JSON.stringify(py)}: ${why}`);
  }
}
