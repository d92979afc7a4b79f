/** `fail2ts regex-test LOG FILTER`: explain what a filter does with each line of a log. */
import { Command } from "@commander-js/extra-typings";
import {
  builtinSource,
  type CompiledFilter,
  compileFilter,
  FilterMatcher,
  type FilterSpec,
  isFilterPath,
  type LineResult,
  loadFilter,
  parseFilterRef,
} from "../filter/index.ts";
import { Fail2tsError } from "../util/errors.ts";
import { forEachLine, readLogArg } from "./input.ts";
import { collectKeyValue, parsePositiveInt, parseTime } from "./options.ts";
import { out, print, table } from "./style.ts";

/** A filter reference, or a regex given on the command line. */
export function resolveFilterArg(arg: string, opts: Record<string, string>, ignore?: string): FilterSpec {
  let spec: FilterSpec;
  const looksLikeName = /^[\w.-]+(\[.*\])?$/s.test(arg);
  const { name } = looksLikeName ? parseFilterRef(arg) : { name: "" };
  if (isFilterPath(arg.split("[")[0]!) || (looksLikeName && builtinSource(name))) {
    spec = loadFilter(arg, opts);
  } else if (looksLikeName && !arg.includes("<")) {
    throw new Fail2tsError(
      "usage",
      `no built-in filter named ${JSON.stringify(name)} (see: fail2ts filters)`,
    );
  } else {
    if (Object.keys(opts).length > 0)
      throw new Fail2tsError("usage", "--opt applies to filters, not to a regex");
    spec = {
      name: "(regex)",
      file: "argument",
      description: "regex given on the command line",
      options: {},
      failregex: [{ text: arg, where: "argument" }],
      ignoreregex: [],
      maxlines: 1,
      declaredOptions: {},
      definitions: [],
    };
  }
  if (ignore) spec.ignoreregex = [...spec.ignoreregex, { text: ignore, where: "argument" }];
  return spec;
}

function isoLocal(t: number | null): string {
  if (t === null) return "-";
  const d = new Date(t * 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The JSON contract read by ../shared/conformance/run: keep it stable. */
export function lineJson(n: number, r: LineResult): string {
  const f = r.failure;
  if (!f) return JSON.stringify({ line: n, match: false, time: r.time });
  const o: Record<string, unknown> = { line: n, match: true, host: f.id, time: f.time };
  for (const [k, v] of Object.entries(f.fields)) if (!(k in o)) o[k] = v;
  o.attempts = f.matches.length;
  o.regex = f.regex;
  return JSON.stringify(o);
}

export function regexTestCommand() {
  return new Command("regex-test")
    .description("test a filter (built-in name, file, or regex) against a log file or a single line")
    .argument("<log>", "log file, '-' for stdin, or one log line as a string")
    .argument("<filter>", "built-in filter (sshd, 'sshd[mode=aggressive]'), a filter file, or a failregex")
    .argument("[ignoreregex]", "an extra ignoreregex")
    .option(
      "--opt <key=value>",
      "set a filter option (repeatable)",
      collectKeyValue,
      {} as Record<string, string>,
    )
    .option("--now <time>", "the current time, for dates without a year (epoch seconds or a date)", parseTime)
    .option("--json", "one JSON object per input line")
    .option("--show-missed", "print the lines that did not match")
    .option("--show-ignored", "print the lines that matched an ignoreregex")
    .option("--max <n>", "how many matched lines to list (0: all)", parsePositiveInt, 20)
    .option("--usedns <mode>", "yes|no: whether <HOST> may match a DNS name", "yes")
    .addHelpText(
      "after",
      `
Examples:
  fail2ts regex-test /var/log/auth.log sshd
  fail2ts regex-test /var/log/auth.log 'sshd[mode=aggressive]' --show-missed
  fail2ts regex-test auth.log sshd --opt mode=ddos --json | head
  fail2ts regex-test 'Jan  1 10:00:00 h sshd[1]: Invalid user x from 192.0.2.1' sshd
  fail2ts regex-test app.log '^login failed for .* from <HOST>$'
  fail2ts regex-test auth.log ./myfilter.toml`,
    )
    .action(async (logArg, filterArg, ignoreArg, o) => {
      const spec = resolveFilterArg(filterArg, o.opt, ignoreArg);
      const now = o.now;
      const useDns = o.usedns === "no" ? "no" : "yes";
      const filter = compileFilter(spec, { useDns, ...(now !== undefined ? { now: () => now } : {}) });
      const log = await readLogArg(logArg);
      const matcher = new FilterMatcher(filter, now !== undefined ? { now: () => now } : {});
      if (o.json) {
        await runJson(matcher, log.text);
        return;
      }
      runHuman(filter, matcher, log.name, log.text, o);
    });
}

async function runJson(matcher: FilterMatcher, text: string): Promise<void> {
  let chunk: string[] = [];
  const writer = Bun.stdout.writer();
  forEachLine(text, (line, n) => {
    chunk.push(lineJson(n, matcher.processLine(line)));
    if (chunk.length >= 4096) {
      writer.write(chunk.join("\n") + "\n");
      chunk = [];
    }
  });
  if (chunk.length) writer.write(chunk.join("\n") + "\n");
  await writer.flush();
}

interface HumanOpts {
  showMissed?: true;
  showIgnored?: true;
  max: number;
}

function runHuman(
  filter: CompiledFilter,
  matcher: FilterMatcher,
  name: string,
  text: string,
  o: HumanOpts,
): void {
  const hits = new Array<number>(filter.fail.length).fill(0);
  const dates = new Map<string, number>();
  const matched: Array<[number, LineResult]> = [];
  const missed: Array<[number, string]> = [];
  const ignoredLines: Array<[number, string]> = [];
  let nMatched = 0;
  let nIgnored = 0;
  let nHelper = 0;
  let nNoDate = 0;
  let nInvalid = 0;
  const started = performance.now();
  const total = forEachLine(text, (line, n) => {
    const r = matcher.processLine(line);
    if (r.dateTemplate) dates.set(r.dateTemplate, (dates.get(r.dateTemplate) ?? 0) + 1);
    else nNoDate++;
    if (r.failure) {
      nMatched++;
      hits[r.regex]!++;
      if (o.max === 0 || matched.length < o.max) matched.push([n, r]);
    } else if (r.ignored) {
      nIgnored++;
      if (o.showIgnored) ignoredLines.push([n, line]);
    } else if (r.regex >= 0) {
      if (r.invalidHost !== null) nInvalid++;
      else nHelper++;
      hits[r.regex]!++;
    } else if (o.showMissed) missed.push([n, line]);
  });
  const secs = (performance.now() - started) / 1000;
  const nMissed = total - nMatched - nIgnored - nHelper - nInvalid;
  const h = out.bold;
  print(
    `${h("Filter:")}  ${filter.spec.name}${optText(filter.spec)}  (${filter.spec.file})`,
    `${h("Log:")}     ${name}`,
    `${h("Lines:")}   ${total} read, ${out.green(`${nMatched} matched`)}, ${nIgnored} ignored, ${nMissed} missed` +
      (nHelper ? `, ${nHelper} helper lines (no failure by themselves)` : "") +
      (nInvalid ? `, ${out.yellow(`${nInvalid} with an invalid host (skipped)`)}` : "") +
      `  [${secs.toFixed(2)} s, ${Math.round(total / Math.max(secs, 1e-6)).toLocaleString("en-US")} lines/s]`,
    "",
    h("Failregex hits:"),
    ...table([
      ["  #", "hits", "regex"],
      ...filter.fail.map((r, i) => [
        `  ${i}`,
        String(hits[i]),
        r.text.length > 100 ? `${r.text.slice(0, 97)}...` : r.text,
      ]),
    ]),
    "",
    h("Date templates:"),
    ...[...dates.entries()].sort((a, b) => b[1] - a[1]).map(([t, c]) => `  ${c}  ${t}`),
    ...(nNoDate ? [`  ${nNoDate}  ${out.yellow("(no date found)")}`] : []),
  );
  if (matched.length) {
    print(
      "",
      h(
        o.max && nMatched > matched.length
          ? `Matches (first ${matched.length} of ${nMatched}; --max 0 for all):`
          : "Matches:",
      ),
      ...table([
        ["  line", "time", "host", "user", "regex"],
        ...matched.map(([n, r]) => {
          const f = r.failure!;
          const user = f.fields.user ?? f.fields.users ?? "";
          return [
            `  ${n}`,
            isoLocal(f.time),
            out.cyan(f.id),
            Array.isArray(user) ? user.join(",") : user,
            `#${f.regex}`,
          ];
        }),
      ]),
    );
  }
  if (o.showIgnored && ignoredLines.length)
    print("", h("Ignored lines:"), ...ignoredLines.map(([n, l]) => `  ${n}: ${l}`));
  if (o.showMissed && missed.length)
    print("", h("Missed lines:"), ...missed.map(([n, l]) => `  ${n}: ${out.dim(l)}`));
}

function optText(spec: FilterSpec): string {
  const changed = Object.entries(spec.options).filter(
    ([k, v]) => spec.declaredOptions[k] !== v || k === "mode",
  );
  return changed.length ? `[${changed.map(([k, v]) => `${k}=${v}`).join(", ")}]` : "";
}
