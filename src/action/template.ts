/**
 * `<tag>` substitution for command argv, mail subject/body. One pass over the template: a value
 * that itself contains `<ip>` is never substituted again. For `sh -c` scripts, tags become
 * environment variable references instead (shellScript): values never enter a script's text.
 */
import type { BanEvent } from "./types.ts";

export type Values = Record<string, string>;

/** The values of an event: <ip> <jail> <failures> <time> <isotime> <bantime> <matches> <count>. */
export function eventValues(ev: BanEvent): Values {
  return {
    ip: ev.ip,
    jail: ev.jail,
    failures: String(ev.failures),
    time: String(Math.floor(ev.time)),
    isotime: new Date(ev.time * 1000).toISOString(),
    bantime: String(ev.bantime),
    matches: ev.matches.join("\n"),
    count: String(ev.count),
  };
}

const TAG = /<([a-z][a-z0-9_-]*)>/g;

/** Replaces known `<tag>`s; unknown ones stay as written. */
export function substitute(template: string, values: Values): string {
  return template.replace(TAG, (whole, name: string) => values[name] ?? whole);
}

/** The environment variable carrying a tag's value for commands: <ip> → F2T_IP. */
export function envName(tag: string): string {
  return `F2T_${tag.toUpperCase().replaceAll("-", "_")}`;
}

/** F2T_IP, F2T_JAIL, ... for every value (NULs, impossible in the environment, dropped). */
export function envOf(values: Values): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) env[envName(k)] = v.replaceAll("\0", "");
  return env;
}

/**
 * A `sh -c` script from a template where every known tag becomes a reference to its environment
 * variable, quoted for where it stands: `"${F2T_IP}"` outside quotes, `${F2T_IP}` inside double
 * quotes, `'"${F2T_IP}"'` inside single quotes. The values themselves never enter the script
 * text, so the shell never parses them: a `$(reboot)` in a log line stays text even inside the
 * user's double quotes or a here-document (where single-quoting the value would not protect it).
 */
export function shellScript(template: string, known: ReadonlySet<string>): string {
  let out = "";
  let state: "plain" | "single" | "double" = "plain";
  const tag = /<([a-z][a-z0-9_-]*)>/y;
  let i = 0;
  while (i < template.length) {
    const c = template[i]!;
    if (state !== "single" && c === "\\") {
      out += template.slice(i, i + 2);
      i += 2;
      continue;
    }
    tag.lastIndex = i;
    const m = tag.exec(template);
    if (m && known.has(m[1]!)) {
      const ref = `\${${envName(m[1]!)}}`;
      out += state === "plain" ? `"${ref}"` : state === "double" ? ref : `'"${ref}"'`;
      i += m[0].length;
      continue;
    }
    if (state === "plain" && c === "'") state = "single";
    else if (state === "plain" && c === '"') state = "double";
    else if (state === "single" && c === "'") state = "plain";
    else if (state === "double" && c === '"') state = "plain";
    out += c;
    i++;
  }
  return out;
}

/** The tags a template uses (for validation). */
export function tagsOf(template: string): string[] {
  return [...template.matchAll(TAG)].map((m) => m[1]!);
}

/** Headers never carry line breaks, whatever the template and the log say. */
export function oneLine(v: string): string {
  return v.replace(/[\r\n\t\v\f\u0085\u2028\u2029]+/g, " ");
}
