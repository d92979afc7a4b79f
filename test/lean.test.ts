/**
 * Scan's matchers run lean (no fields, no matched lines, results reused: MatcherOptions.lean).
 * They must find exactly the failures, times and verdicts of the full matchers the daemon and
 * regex-test use: every built-in filter in every mode over our test lines, and the sshd
 * sessions of a long generated log.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { builtinFilterNames, compileFilter, FilterMatcher, loadFilter } from "../src/filter/index.ts";
import type { LineResult } from "../src/filter/matcher.ts";
import { authLog } from "./helpers/authlog.ts";
import { modesOf } from "./helpers/modes.ts";

const root = new URL("..", import.meta.url).pathname;
const NOW = Date.UTC(2026, 5, 1) / 1000;

const ALL_LINES = readdirSync(`${root}test/filter-lines`)
  .filter((f) => f.endsWith(".log"))
  .flatMap((f) => readFileSync(`${root}test/filter-lines/${f}`, "utf8").split("\n"))
  .filter((l) => l !== "" && !l.startsWith("#"));

/** What a lean result tells scan, read at once (lean results are reused). */
function verdict(r: LineResult) {
  const f = r.failure;
  return {
    time: r.time,
    dated: r.dateTemplate !== null,
    regex: r.regex,
    ignored: r.ignored,
    invalidHost: r.invalidHost,
    failure: f ? { id: f.id, kind: f.kind, time: f.time, regex: f.regex } : null,
  };
}

function both(name: string, extra: Record<string, string>, lines: string[]) {
  const filter = compileFilter(loadFilter(name, extra));
  const opts = { now: () => NOW, noDate: "last" as const };
  const full = new FilterMatcher(filter, opts);
  const lean = new FilterMatcher(filter, { ...opts, lean: true });
  const a = lines.map((l) => verdict(full.processLine(l)));
  const b = lines.map((l) => verdict(lean.processLine(l)));
  return { a, b };
}

describe("lean matchers find what full ones find", () => {
  for (const name of builtinFilterNames())
    for (const mode of modesOf(name))
      test(`${name} ${mode ?? ""}`, () => {
        const { a, b } = both(name, mode ? { mode } : {}, ALL_LINES);
        expect(b).toEqual(a);
      });

  for (const mode of ["normal", "aggressive", "ddos", "extra"])
    test(`sshd sessions over a generated auth.log, mode=${mode}`, () => {
      const lines = authLog(20000).split("\n");
      const { a, b } = both("sshd", { mode }, lines);
      expect(a.filter((v) => v.failure !== null).length).toBeGreaterThan(1000);
      expect(b).toEqual(a);
    });
});
