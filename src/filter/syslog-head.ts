/**
 * The syslog prefix most built-in filters open their prefregex with (`prefix_file` in
 * filters/_common.toml: " host daemon[pid]: "), recognised in the PCRE2 source of a prefregex,
 * so that scan's engine reads it with code of its own (fast_head in src/scan/engine.c) instead
 * of running PCRE2 over the start of every line (sshd: 13% of a scan worker's time).
 *
 * The engine takes only the usual shapes of line, and hands any other to PCRE2: optional
 * blanks, a host (no "<" first), blanks, then either one of the daemon's names, "[digits]:",
 * blanks and no "[", or a tag that starts with none of the names (another daemon's line: the
 * prefix ends there); then (sshd) an optional "error: " or "fatal: " and "PAM: ", then at least
 * one character. On those shapes PCRE2 finds the same match: every part of the prefix is an
 * optional group and nothing after it can fail but the last character, so PCRE2's match is the
 * first way through that it tries, and on those shapes the engine's reading is that way. The
 * parts it skips (BSD facility, kernel stamp, vserver, msgid, the daemon forms "[pid]: daemon",
 * ": daemon" and "(daemon)") cannot start where they would have to; PCRE2 tries the daemon's
 * names in the order daemonNames lists them, and the first one the line starts with is its
 * choice when "[digits]: " follows it (else PCRE2 reads the line). A daemon regex that is not
 * a short list of names (`\w+`, `[\w.-]+`...) leaves the filter to PCRE2.
 */

/** `prefix_file` as it reaches PCRE2, %D for the daemon regex (see pcreSource). */
const PREFIX = String.raw`(?:\[\])?\s*(?:<[^.\s]+\.[^.\s]+>\s+)?(?:\S+\s+)?(?:kernel:\s?\[ *\d+\.\d+\]:?\s+)?(?:@vserver_\S+\s+)?(?:(?:(?:\[\d+\])?:\s+[\[\x28]?%D(?:\(\S+\))?[\]\x29]?:?|[\[\x28]?%D(?:\(\S+\))?[\]\x29]?:?(?:\[\d+\])?:?)\s+)?(?:\[ID \d+ \S+\]\s+)?`;
/** What sshd's prefregex adds after the prefix. */
const ERROR_TAIL = String.raw`(?:(?:error|fatal): (?:PAM: )?)?`;
/** The content group that closes a prefregex, in PCRE2 form. */
const CONTENT = String.raw`([^\n\r]+)$`;
/** More names than this: PCRE2 does it. */
const MAX_NAMES = 32;

export interface SyslogHead {
  /** The daemon's names, in the order PCRE2 tries them. */
  daemons: string[];
  /** The prefix is the regex's group 1 (sshd's <F-MLFID>). */
  grouped: boolean;
  /** "error: " or "fatal: ", then "PAM: ", may follow the prefix (sshd). */
  errorTail: boolean;
}

/**
 * What the engine needs to read the prefix of a prefregex whose PCRE2 source (case-sensitive,
 * see pcreSource) is `^` + [group of] prefix_file + [sshd's error tail] + the content group;
 * null for any other.
 */
export function syslogHead(source: string | null, flags: string): SyslogHead | null {
  if (source === null || /[imsx]/.test(flags) || !source.endsWith(CONTENT)) return null;
  let rest = source.slice(0, -CONTENT.length);
  const errorTail = rest.endsWith(ERROR_TAIL);
  if (errorTail) rest = rest.slice(0, -ERROR_TAIL.length);
  const grouped = rest.startsWith("^(") && !rest.startsWith("^(?") && rest.endsWith(")");
  rest = grouped ? rest.slice(2, -1) : rest.startsWith("^") ? rest.slice(1) : "";
  const [a, b, c] = PREFIX.split("%D") as [string, string, string];
  if (!rest.startsWith(a) || !rest.endsWith(c)) return null;
  const middle = rest.slice(a.length, rest.length - c.length);
  // middle = D + b + D
  if ((middle.length - b.length) % 2 !== 0) return null;
  const n = (middle.length - b.length) / 2;
  const d = middle.slice(0, n);
  if (middle !== d + b + d) return null;
  const daemons = daemonNames(d);
  return daemons === null ? null : { daemons, grouped, errorTail };
}

/**
 * The strings a daemon regex (PCRE2 source) matches, in the order PCRE2 tries them, when they
 * are a few non-empty names: literals, `(?:...|...)` groups, classes of plain characters, and
 * greedy `?`. Null for anything else.
 */
export function daemonNames(src: string): string[] | null {
  let i = 0;
  const product = (xs: string[], ys: string[]): string[] | null => {
    const out: string[] = [];
    for (const x of xs) for (const y of ys) out.push(x + y);
    return out.length > MAX_NAMES ? null : out;
  };
  const atom = (): string[] | null => {
    const ch = src[i]!;
    if (ch === "(") {
      if (!src.startsWith("(?:", i)) return null;
      i += 3;
      const a = alternation();
      if (a === null || src[i] !== ")") return null;
      i++;
      return a;
    }
    if (ch === "[") {
      const end = src.indexOf("]", i + 1);
      const body = end < 0 ? "" : src.slice(i + 1, end);
      if (!/^[A-Za-z0-9_]+$/.test(body)) return null;
      i = end + 1;
      return [...new Set(body)];
    }
    if (ch === "\\") {
      const e = src[i + 1];
      // an escaped punctuation character is itself; \d, \w, \x.. and the like are not names
      if (e === undefined || /[A-Za-z0-9]/.test(e)) return null;
      i += 2;
      return [e];
    }
    if ("^$.|?*+()[]{}".includes(ch)) return null;
    i++;
    return [ch];
  };
  const sequence = (): string[] | null => {
    let acc: string[] | null = [""];
    while (i < src.length && src[i] !== "|" && src[i] !== ")") {
      let a = atom();
      if (a === null) return null;
      const q = src[i];
      if (q === "?") {
        i++;
        if (src[i] === "?" || src[i] === "+") return null; // lazy, possessive
        a = [...a, ""]; // greedy: with it first
      } else if (q === "*" || q === "+" || q === "{") return null;
      acc = product(acc, a);
      if (acc === null) return null;
    }
    return acc;
  };
  const alternation = (): string[] | null => {
    const out: string[] = [];
    for (;;) {
      const s = sequence();
      if (s === null) return null;
      out.push(...s);
      if (out.length > MAX_NAMES) return null;
      if (src[i] !== "|") return out;
      i++;
    }
  };
  const names = alternation();
  if (names === null || i !== src.length || names.some((n) => n === "")) return null;
  return names;
}
