/** Reading log text for one-shot commands: a file, stdin (`-`), or a literal line. */
import { existsSync, statSync } from "node:fs";
import { Fail2tsError } from "../util/errors.ts";

export interface LogText {
  /** Display name: the path, "stdin" or "(line)". */
  name: string;
  text: string;
}

export async function readLogArg(arg: string): Promise<LogText> {
  if (arg === "-") return { name: "stdin", text: await Bun.stdin.text() };
  if (existsSync(arg)) {
    try {
      if (statSync(arg).isDirectory()) throw new Fail2tsError("usage", `${arg} is a directory`);
      return { name: arg, text: await Bun.file(arg).text() };
    } catch (e) {
      if (e instanceof Fail2tsError) throw e;
      throw new Fail2tsError("io", `cannot read: ${(e as Error).message}`, arg);
    }
  }
  if (!arg.includes("\n") && /^[./~]/.test(arg) && arg.length < 256 && !arg.includes(" ")) {
    throw new Fail2tsError("io", "no such file", arg);
  }
  return { name: "(line)", text: arg };
}

/** Calls fn for each line (without "\n" or a trailing "\r"); a final empty line is not a line. */
export function forEachLine(text: string, fn: (line: string, n: number) => void): number {
  let n = 0;
  let pos = 0;
  const len = text.length;
  while (pos < len) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = len;
    let stop = end;
    if (stop > pos && text.charCodeAt(stop - 1) === 13) stop--;
    fn(text.slice(pos, stop), ++n);
    pos = end + 1;
  }
  return n;
}
