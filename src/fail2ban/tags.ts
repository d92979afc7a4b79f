/**
 * Fail2ban's `<tag>` substitution between options (`b = <a>_3`, nested `<mdre-<mode>>`,
 * `<lt_<logtype>/__prefix_line>`), and its `name[key=value, ...]` option syntax.
 */
import { Fail2tsError } from "../util/errors.ts";
import { flat, replaceAll, type Text, whereAt } from "./text.ts";

const TAG = /<([^ <>]+)>/g;
const MAX_TAG_REPLACE_COUNT = 25;

export interface SubstituteOptions {
  /** Tags never substituted (ban-time values of actions). */
  ignore?: Iterable<string>;
  /** A value for a tag the map does not have (a [Definition] option, `section/option`...). */
  addrepl?: (tag: string) => Text | null;
  /** `family=inet6`: a `tag?family=inet6` value wins over `tag`. */
  conditional?: string;
}

/**
 * Substitutes `<tag>`s inside the values of `tags` with other values, repeatedly, until nothing
 * changes (Fail2ban's substituteRecursiveTags). Unknown tags stay as written (`<HOST>`). A value
 * that refers to itself is an error.
 */
export function substituteRecursiveTags(
  input: Map<string, Text>,
  o: SubstituteOptions = {},
): Map<string, Text> {
  const tags = new Map(input);
  const ignore = new Set(o.ignore ?? []);
  const done = new Set<string>();
  const repCounts = new Map<string, Map<string, number>>();
  const keys = [...tags.keys()];
  for (;;) {
    let again = false;
    for (const tag of keys) {
      if (ignore.has(tag) || done.has(tag)) continue;
      const orgval = tags.get(tag)!;
      let value = orgval;
      let s = flat(value);
      const rplc = repCounts.get(tag) ?? new Map<string, number>();
      TAG.lastIndex = 0;
      let m = TAG.exec(s);
      while (m) {
        const rtag = m[1]!;
        if (ignore.has(rtag)) {
          TAG.lastIndex = m.index + m[0].length;
          m = TAG.exec(s);
          continue;
        }
        if (rtag === tag || (rplc.get(rtag) ?? 1) > MAX_TAG_REPLACE_COUNT) {
          throw new Fail2tsError(
            "config",
            `<${tag}> refers to itself (through <${rtag}>): its value cannot be resolved`,
            whereAt(value, m.index),
          );
        }
        let repl: Text | null | undefined;
        if (o.conditional) repl = tags.get(`${rtag}?${o.conditional}`);
        if (repl === undefined || repl === null) {
          repl = tags.get(rtag);
          if (repl === undefined && o.addrepl) repl = o.addrepl(rtag);
        }
        if (repl === undefined || repl === null) {
          TAG.lastIndex = m.index + m[0].length;
          m = TAG.exec(s);
          continue;
        }
        value = replaceAll(value, `<${rtag}>`, repl);
        s = flat(value);
        rplc.set(rtag, (rplc.get(rtag) ?? 0) + 1);
        TAG.lastIndex = m.index;
        m = TAG.exec(s);
      }
      if (value !== orgval) {
        TAG.lastIndex = 0;
        if (TAG.test(s)) {
          repCounts.set(tag, rplc);
          again = true;
        }
        tags.set(tag, value);
      }
      if (!s.includes("<")) done.add(tag);
    }
    if (!again) break;
  }
  return tags;
}

const OPTION = /^([^[]+)(?:\[(.*)\])?\s*$/s;
const OPTION_EXTRACT =
  /\s*([\w\-_.]+)=(?:"([^"]*)"|'([^']*)'|([^,\]]*))(?:,|\]\s*\[|$|(?<wrngA>.+))|,?\s*$|(?<wrngB>.+)/gs;
const OPTION_SPLIT =
  /(?:[^[\s]+(?:\s*\[\s*(?:[\w\-_.]+=(?:"[^"]*"|'[^']*'|[^,\]]*)\s*(?:,|\]\s*\[)?\s*)*\])?\s*|\S+)(?=\n\s*|\s+|$)/gs;

/** `name[k=v, k2="v 2"][k3='x']` → name and options (Fail2ban's extractOptions). */
export function extractOptions(option: string): { name: string; options: Record<string, string> } {
  const m = OPTION.exec(option);
  if (!m) throw new Fail2tsError("config", `unexpected option syntax: ${JSON.stringify(option)}`);
  const options: Record<string, string> = {};
  const optstr = m[2];
  if (optstr) {
    OPTION_EXTRACT.lastIndex = 0;
    for (const om of optstr.matchAll(OPTION_EXTRACT)) {
      if (om.groups?.wrngA) {
        throw new Fail2tsError(
          "config",
          `unexpected syntax after option ${JSON.stringify(om[1])}: ${om.groups.wrngA.slice(0, 25)}`,
        );
      }
      if (om.groups?.wrngB) {
        throw new Fail2tsError(
          "config",
          `expected an option (key=value), got: ${om.groups.wrngB.slice(0, 25)}`,
        );
      }
      const opt = om[1];
      if (!opt) continue;
      const value = om[2] ?? om[3] ?? om[4] ?? "";
      options[opt.trim()] = value.trim();
      if (om[0] === "") break;
    }
  }
  return { name: m[1]!, options };
}

/** Splits an `action = a[x=1]\n b[y="2 3"]` value into its entries (Fail2ban's splitWithOptions). */
export function splitWithOptions(option: string): string[] {
  return [...option.matchAll(OPTION_SPLIT)].map((m) => m[0]);
}
