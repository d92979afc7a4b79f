#!/usr/bin/env bun
/**
 * Feeds one filter adversarial lines (64 KiB of repeated separators, near-miss prefixes, long
 * runs of the characters its regexes repeat) and prints {"name", "lines", "ms", "worst"} as
 * JSON. Run in a subprocess by test/filters.test.ts, so that a catastrophic regex is killed by
 * a timeout instead of hanging the suite.
 * Usage: bun scripts/redos-check.ts FILTER [--mode MODE]
 */
import { existsSync, readFileSync } from "node:fs";
import { compileFilter, FilterMatcher, loadFilter } from "../src/filter/index.ts";

const name = process.argv[2]!;
const modeIdx = process.argv.indexOf("--mode");
const opts: Record<string, string> = modeIdx > 0 ? { mode: process.argv[modeIdx + 1]! } : {};
const spec = loadFilter(name, opts);
const filter = compileFilter(spec);
const SIZE = 64 * 1024;

const samplePath = new URL(`../test/filter-lines/${name}.log`, import.meta.url).pathname;
const samples = existsSync(samplePath)
  ? readFileSync(samplePath, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("#"))
  : [];
const base = samples[0] ?? "Jan  1 00:00:00 host daemon[123]: message from 192.0.2.1";
const cut = Math.min(base.length, Math.max(base.indexOf(": ") + 2, 16));
const prefix = base.slice(0, cut);

const fill = (unit: string) => unit.repeat(Math.ceil(SIZE / unit.length)).slice(0, SIZE);
const units = [
  " ",
  ":",
  ".",
  "a",
  "1",
  "-",
  "[",
  "]",
  "/",
  "\t",
  "a ",
  "1.",
  ": ",
  "from ",
  "user ",
  "=",
  '"',
  "'",
  "x=y ",
  "<",
  "\\",
];
const lines: string[] = [];
for (const u of units) {
  lines.push(prefix + fill(u));
  lines.push(prefix + fill(u) + " from 192.0.2.1 port 22");
}
// Near misses: every sample line with its middle repeated, and with a long tail.
for (const s of samples.slice(0, 8)) {
  const mid = s.slice(cut, Math.max(cut + 1, s.length - 10));
  if (mid.length > 0) lines.push(prefix + fill(mid));
  lines.push(s + fill(" "));
  // Cut after each separator and run on with spaces: where `\s*` meets `.*` this goes quadratic.
  let at = s.indexOf(": ", cut);
  for (let k = 0; k < 4 && at >= 0; k++, at = s.indexOf(": ", at + 2))
    lines.push(s.slice(0, at + 1) + fill(" "));
  lines.push(s.slice(0, -1) + fill(s.slice(-1)));
}
// Runs of characters the filter's regexes repeat (\S+, \w+, [^:]+ ... in practice: word chars, digits).
for (const c of ["A", "0", "_", "%", "@", "(", ")", ",", ";", "|", "+", "*"]) lines.push(prefix + fill(c));

const m = new FilterMatcher(filter, { now: () => 1700000000 });
let worst = 0;
// CPU time rather than wall time: a loaded machine must not fail a linear filter.
const c0 = process.cpuUsage();
const t0 = performance.now();
for (const l of lines) {
  const t = performance.now();
  m.processLine(l);
  worst = Math.max(worst, performance.now() - t);
}
const wall = performance.now() - t0;
const cpu = process.cpuUsage(c0);
const ms = Math.min(wall, (cpu.user + cpu.system) / 1000);
console.log(
  JSON.stringify({
    name,
    mode: opts.mode ?? null,
    lines: lines.length,
    ms: Number(ms.toFixed(2)),
    wall: Number(wall.toFixed(2)),
    worst: Number(worst.toFixed(2)),
  }),
);
