/**
 * Where a `<tag>` sits in a shell script: unquoted, in '…', in "…", inside `$(…)`, in a
 * here-document. Fail2ban's action templates put ban values (`<ip>`, `<matches>`) anywhere. fail2ts's
 * command action hands every value to `sh -c` in the environment (F2T_IP, F2T_MATCHES, ...), never
 * in the script text; `protectTags` rewrites each value tag into a reference to that variable,
 * quoted for the exact place it stands (`"ALL: <ip>\n"` → `"ALL: ${F2T_IP}\n"`, `echo <ip>` →
 * `echo "${F2T_IP}"`), so the shell never parses a value. Literal `<word>` text that is not a value
 * (`<fail2ban>` in a From: header) is broken up so that it is never taken for one.
 */
import { envName } from "../action/template.ts";

export type Ctx = "N" | "S" | "D" | "H" | "Q";

/** The quoting context of every character of a script (N plain, S '…', D "…", H/Q here-doc body). */
export function shellContexts(src: string): Ctx[] {
  const ctx: Ctx[] = new Array(src.length);
  const stack: Array<"N" | "D" | "B"> = ["N"];
  const pending: Array<{ delim: string; strip: boolean; quoted: boolean }> = [];
  let i = 0;
  const top = () => stack[stack.length - 1]!;
  while (i < src.length) {
    const c = src[i]!;
    const t = top();
    if (t === "D") {
      ctx[i] = "D";
      if (c === "\\" && i + 1 < src.length) {
        ctx[i + 1] = "D";
        i += 2;
        continue;
      }
      if (c === '"') stack.pop();
      else if (c === "$" && src[i + 1] === "(") {
        ctx[i + 1] = "D";
        stack.push("N");
        i += 2;
        continue;
      } else if (c === "`") stack.push("B");
      i++;
      continue;
    }
    // N or B (backticks): plain shell
    ctx[i] = "N";
    if (c === "\\" && i + 1 < src.length) {
      ctx[i + 1] = "N";
      i += 2;
      continue;
    }
    if (c === "'") {
      ctx[i] = "S";
      let j = i + 1;
      while (j < src.length && src[j] !== "'") ctx[j++] = "S";
      if (j < src.length) ctx[j] = "S";
      i = j + 1;
      continue;
    }
    if (c === '"') {
      ctx[i] = "D";
      stack.push("D");
      i++;
      continue;
    }
    if (c === "`") {
      if (t === "B") stack.pop();
      else stack.push("B");
      i++;
      continue;
    }
    if (c === "$" && src[i + 1] === "(") {
      ctx[i + 1] = "N";
      stack.push("N");
      i += 2;
      continue;
    }
    if (c === ")" && stack.length > 1 && t === "N") {
      stack.pop();
      i++;
      continue;
    }
    if (c === "#" && (i === 0 || /[\s;&|(]/.test(src[i - 1]!))) {
      while (i < src.length && src[i] !== "\n") ctx[i++] = "N";
      continue;
    }
    if (c === "<" && src[i + 1] === "<" && src[i + 2] !== "<") {
      const m = /^<<(-?)[ \t]*(?:'([^']*)'|"([^"]*)"|\\?([A-Za-z_][\w-]*))/.exec(src.slice(i));
      if (m) {
        pending.push({
          delim: m[2] ?? m[3] ?? m[4]!,
          strip: m[1] === "-",
          quoted: m[2] !== undefined || m[3] !== undefined,
        });
        for (let k = 0; k < m[0].length; k++) ctx[i + k] = "N";
        i += m[0].length;
        continue;
      }
    }
    if (c === "\n" && pending.length > 0) {
      i++;
      for (const h of pending) {
        // body lines until the delimiter line
        while (i < src.length) {
          let end = src.indexOf("\n", i);
          if (end < 0) end = src.length;
          const line = src.slice(i, end);
          const isEnd = (h.strip ? line.replace(/^\t+/, "") : line) === h.delim;
          for (let k = i; k <= end && k < src.length; k++) ctx[k] = isEnd ? "N" : h.quoted ? "Q" : "H";
          i = end + 1;
          if (isEnd) break;
        }
      }
      pending.length = 0;
      continue;
    }
    i++;
  }
  return ctx;
}

/** fail2ts's command action takes `<word>` as a value tag (src/action/template.ts). */
const CMD_TAG = /<([a-z][a-z0-9_-]*)>/g;

/**
 * Rewrites `script` so that each tag in `values` becomes a quoted reference to its environment
 * variable and every other `<word>` stays literal text. Returns null when a value sits where no
 * expansion happens (a quoted here-document).
 */
export function protectTags(script: string, values: ReadonlySet<string>): string | null {
  const ctx = shellContexts(script);
  let out = "";
  let last = 0;
  for (const m of script.matchAll(CMD_TAG)) {
    const at = m.index;
    const c = ctx[at] ?? "N";
    out += script.slice(last, at);
    last = at + m[0].length;
    if (values.has(m[1]!)) {
      const ref = `\${${envName(m[1]!)}}`;
      if (c === "N") out += `"${ref}"`;
      else if (c === "S") out += `'"${ref}"'`;
      else if (c === "D" || c === "H") out += ref;
      else return null;
    } else {
      // `<` + an empty word + `name>`: the same text for the shell, no tag for the substitution
      const empty = c === "S" ? "''" : c === "D" ? '""' : c === "H" ? "$(:)" : c === "Q" ? null : "''";
      if (empty === null) {
        out += m[0];
        continue;
      }
      out += `<${empty}${m[0].slice(1)}`;
    }
  }
  return out + script.slice(last);
}
