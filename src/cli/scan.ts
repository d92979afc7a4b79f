/** `fail2ts scan LOG...`: audit historical logs — who would have been banned, when, and why. */
import { availableParallelism } from "node:os";
import { Command, Option } from "@commander-js/extra-typings";
import { InvalidArgumentError } from "commander";
import { builtinSource, isFilterPath, loadFilter, parseFilterRef } from "../filter/index.ts";
import { NO_INCREMENT } from "../jail/increment.ts";
import { autoSelect } from "../scan/autoselect.ts";
import { bytesPerWorker, startWorkers, stopEarlyWorkers } from "../scan/pool.ts";
import { runScan, type ScanBan, type ScanReport } from "../scan/scan.ts";
import { expandInputs } from "../source/inputs.ts";
import { formatDuration, parseDuration } from "../util/duration.ts";
import { Fail2tsError } from "../util/errors.ts";
import { cidrMatcher } from "../util/ip.ts";
import { collectList, parsePositiveInt, parseTime } from "./options.ts";
import { progressBar } from "./progress.ts";
import { err, out, print, table, warn } from "./style.ts";

function durationArg(v: string): number {
  const d = parseDuration(v);
  if (d === null) throw new InvalidArgumentError("expected a duration such as 600, 10m, 1h30m, 1d");
  return d;
}

function iso(t: number | null): string {
  if (t === null) return "-";
  const d = new Date(t * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function csvCell(v: string | number | null): string {
  const s = v === null ? "" : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function scanCommand() {
  return new Command("scan")
    .description("audit historical logs: who would have been banned, when, and why")
    .argument("<logs...>", "log files, globs, directories, rotated sets (.gz too), or '-' for stdin")
    .option(
      "-f, --filter <name>",
      "filter to apply, with options: 'sshd[mode=aggressive]' (repeatable; default: chosen from the files)",
      collectList,
      [] as string[],
    )
    .option("--maxretry <n>", "failures that lead to a ban", parsePositiveInt, 5)
    .option("--findtime <duration>", "window in which maxretry failures count", durationArg, 600)
    .option("--bantime <duration>", "ban length (-1: permanent)", durationArg, 600)
    .option("--ignoreip <cidr>", "address or network never banned (repeatable)", collectList, [] as string[])
    .option("--increment", "lengthen repeat offenders' bans (bantime × 2^n)")
    .option("--maxtime <duration>", "cap for incremented bans", durationArg)
    .option("--since <time>", "only failures at or after this time (date, epoch, or age like 7d)", parseTime)
    .option("--until <time>", "only failures at or before this time", parseTime)
    .option("--top <n>", "how many top offenders to show", parsePositiveInt, 10)
    .option("--now <time>", "the current time, for dates without a year (epoch seconds or a date)", parseTime)
    .option("-j, --jobs <n>", "worker processes (default: one per core; 0: none)", parsePositiveInt)
    .addOption(
      new Option("-o, --output <format>", "output format").choices([
        "table",
        "json",
        "ndjson",
        "csv",
      ] as const),
    )
    .option("--no-progress", "no progress bar")
    .addHelpText(
      "after",
      `
Examples:
  fail2ts scan /var/log/auth.log*                      rotated set, oldest first, filter chosen from the name
  fail2ts scan -f sshd --maxretry 3 --findtime 1h /var/log/auth.log /var/log/auth.log.1
  fail2ts scan -f 'sshd[mode=aggressive]' --since 7d -o json /var/log/auth.log | jq '.bans | length'
  fail2ts scan -f postfix -o csv /var/log/mail.log* > bans.csv
  journalctl -u ssh -o json | fail2ts scan -f sshd -
  zcat old.log.gz | fail2ts scan -f sshd -o ndjson -     # one ban per line, for a blocklist

Exit status: 0 when every input was read, 1 when some could not be (the others are still scanned).`,
    )
    .action(async (logs, o) => {
      const { files, problems } = expandInputs(logs);
      const total = files.reduce((s, f) => s + f.size, 0);
      const workers = o.jobs ?? (total > 4 * 1024 * 1024 ? Math.min(availableParallelism(), 8) : 0);
      // the workers boot while the filters are compiled and checked here
      startWorkers(workers, bytesPerWorker(files, workers));
      try {
        let refs = o.filter;
        const notes: string[] = [];
        if (refs.length === 0) {
          const picked = autoSelect(files.map((f) => f.path));
          if (picked.length === 0) {
            throw new Fail2tsError(
              "usage",
              "no filter given and none recognised from the files: use --filter NAME (see: fail2ts filters)",
            );
          }
          refs = picked.map((p) => p.filter);
          for (const p of picked) notes.push(`using filter ${p.filter} (from the ${p.why})`);
        }
        const seenJail = new Set<string>();
        const filterRefs = refs.map((ref) => {
          const { name } = parseFilterRef(ref);
          if (!isFilterPath(name) && !builtinSource(name)) {
            throw new Fail2tsError(
              "usage",
              `no built-in filter named ${JSON.stringify(name)} (see: fail2ts filters)`,
            );
          }
          const spec = loadFilter(ref); // validates options and regexes before any work
          let jail = isFilterPath(name) ? (name.split("/").pop() ?? name).replace(/\.toml$/, "") : name;
          while (seenJail.has(jail)) jail += "'";
          seenJail.add(jail);
          return { ref, jail, spec };
        });
        try {
          cidrMatcher(o.ignoreip);
        } catch (e) {
          throw new Fail2tsError("usage", `--ignoreip: ${(e as Error).message}`);
        }
        const format = o.output ?? (process.stdout.isTTY ? "table" : "table");
        for (const n of notes) process.stderr.write(`${err.dim(`fail2ts: ${n}`)}\n`);
        for (const p of problems) process.stderr.write(`${err.red("fail2ts:")} ${p.path}: ${p.message}\n`);
        // json, ndjson and csv are written as the bans are decided: memory stays flat.
        const sink = new BanSink(format);
        const bar = progressBar(
          "scanning",
          o.progress !== false && Boolean(process.stderr.isTTY) && total > 32 * 1024 * 1024,
        );
        const report = await runScan(
          files,
          {
            filters: filterRefs,
            maxretry: o.maxretry,
            findtime: o.findtime,
            bantime: o.bantime,
            ignoreip: o.ignoreip,
            ...(o.increment
              ? { increment: { ...NO_INCREMENT, enabled: true, maxtime: o.maxtime ?? 0 } }
              : {}),
            ...(o.since !== undefined ? { since: o.since } : {}),
            ...(o.until !== undefined ? { until: o.until } : {}),
            now: o.now ?? Date.now() / 1000,
            workers,
            onProgress: (d, t) => bar.update(d, t),
            keepOffenders: o.top, // only the top ones are shown
            ...(format === "table" ? { keepBans: 50 } : { keepBans: 0, onBan: (b: ScanBan) => sink.ban(b) }),
          },
          problems,
        );
        bar.end();
        for (const f of report.files)
          if (f.error) process.stderr.write(`${err.red("fail2ts:")} ${f.path}: ${f.error}\n`);
        if (format === "table") renderTable(report, o.top);
        else await sink.end(report, o.top);
        if (problems.length > 0) process.exitCode = 1;
      } finally {
        stopEarlyWorkers(); // any the scan did not take (it did not start: a usage error)
      }
    });
}

/** A ban as json/ndjson print it: the documented field names. */
function banJson(b: ScanBan) {
  return {
    ip: b.ip,
    jail: b.jail,
    time: b.time,
    first_failure: b.first,
    failures: b.failures,
    bantime: b.bantime,
    unban: b.unban,
    count: b.count,
  };
}

const CSV_HEADER = "ip,jail,time,first_failure,failures,bantime,unban,count";

function csvRow(b: ScanBan): string {
  return [
    b.ip,
    b.jail,
    iso(b.time),
    iso(b.first),
    b.failures,
    b.bantime,
    b.unban === null ? "" : iso(b.unban),
    b.count,
  ]
    .map(csvCell)
    .join(",");
}

/** Streams bans to stdout in json/ndjson/csv; json puts the summary after the bans. */
class BanSink {
  private readonly w = Bun.stdout.writer();
  private n = 0;
  constructor(private readonly format: "table" | "json" | "ndjson" | "csv") {
    if (format === "json") this.w.write('{\n  "bans": [');
    else if (format === "csv") this.w.write(`${CSV_HEADER}\n`);
  }

  ban(b: ScanBan): void {
    if (this.format === "json") this.w.write(`${this.n ? "," : ""}\n    ${JSON.stringify(banJson(b))}`);
    else if (this.format === "ndjson") this.w.write(`${JSON.stringify(banJson(b))}\n`);
    else if (this.format === "csv") this.w.write(`${csvRow(b)}\n`);
    if (++this.n % 1024 === 0) void this.w.flush();
  }

  async end(r: ScanReport, top: number): Promise<void> {
    if (this.format === "json") {
      const rest = {
        files: r.files,
        lines: r.lines,
        bytes: r.bytes,
        failures: r.failures,
        counted: r.counted,
        ignored: r.ignored,
        no_date: r.noDate,
        binary: r.binary,
        invalid_host: r.invalid,
        first: r.first,
        last: r.last,
        jails: r.perJail,
        top: r.offenders.slice(0, top),
        seconds: Number(r.seconds.toFixed(3)),
      };
      const body = JSON.stringify(rest, null, 2).slice(1); // "\n  "files": …\n}"
      this.w.write(`${this.n ? "\n  " : ""}],${body}\n`);
    }
    await this.w.flush();
  }
}

function renderTable(r: ScanReport, top: number): void {
  const h = out.bold;
  const rate = Math.round(r.lines / Math.max(r.seconds, 1e-6)).toLocaleString("en-US");
  print(
    `${h("Read:")}     ${r.files.length} file(s), ${r.lines.toLocaleString("en-US")} lines, ${(r.bytes / 1048576).toFixed(1)} MiB in ${r.seconds.toFixed(2)} s (${rate} lines/s)`,
    `${h("Covers:")}   ${iso(r.first)} → ${iso(r.last)}`,
    `${h("Failures:")} ${r.failures.toLocaleString("en-US")}` +
      (r.counted !== r.failures ? ` (${r.counted.toLocaleString("en-US")} in the time range)` : "") +
      (r.ignored ? `, ${r.ignored} from ignored addresses` : "") +
      (r.noDate ? `, ${out.yellow(`${r.noDate} lines without a readable date`)}` : "") +
      (r.binary ? `, ${out.yellow(`${r.binary} binary lines skipped`)}` : "") +
      (r.invalid ? `, ${out.yellow(`${r.invalid} with an invalid host`)}` : ""),
    `${h("Bans:")}     ${out.red(String(r.banCount))} of ${r.bannedAddresses} address(es)`,
    "",
    ...table([
      ["  jail", "filter", "failures", "bans"],
      ...r.perJail.map((j) => [`  ${j.jail}`, j.filter, String(j.failures), String(j.bans)]),
    ]),
  );
  if (r.bans.length) {
    const shown = r.bans.slice(0, 50);
    print(
      "",
      h(
        r.banCount > shown.length
          ? `Bans (first ${shown.length} of ${r.banCount}; -o csv for all):`
          : "Bans:",
      ),
      ...table([
        ["  ban time", "ip", "jail", "failures", "first failure", "bantime", "unban", "repeat"],
        ...shown.map((b) => [
          `  ${iso(b.time)}`,
          out.cyan(b.ip),
          b.jail,
          String(b.failures),
          iso(b.first),
          formatDuration(b.bantime),
          b.unban === null ? "never" : iso(b.unban),
          b.count ? `#${b.count + 1}` : "",
        ]),
      ]),
    );
  }
  if (r.offenders.length && top > 0) {
    print(
      "",
      h(`Top ${Math.min(top, r.offenders.length)} offenders:`),
      ...table([
        ["  ip", "failures", "bans"],
        ...r.offenders.slice(0, top).map((o) => [`  ${o.ip}`, String(o.failures), String(o.bans)]),
      ]),
    );
  }
  if (r.lines === 0) warn("no lines were read");
}
