/**
 * Hygiene of every built-in filter: it loads in each of its modes, has a description, every
 * failregex matches at least one of our own test lines, no unanchored greedy catch-all before
 * <HOST>, and adversarial 64 KiB lines cost under 1 ms a line on average (ReDoS).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { builtinFilterNames, compileFilter, FilterMatcher, loadFilter } from "../src/filter/index.ts";
import { modesOf } from "./helpers/modes.ts";

const names = builtinFilterNames();
const root = new URL("..", import.meta.url).pathname;

test("there are built-in filters", () => {
  expect(names.length).toBeGreaterThan(0);
  expect(names).toContain("sshd");
});

describe.each(names)("filter %s", (name) => {
  test("loads and compiles in every mode, with a description", () => {
    const spec = loadFilter(name);
    expect(spec.description.length).toBeGreaterThan(10);
    for (const mode of modesOf(name)) compileFilter(loadFilter(name, mode ? { mode } : {}));
  });

  test("every failregex matches one of our test lines", () => {
    const path = `${root}test/filter-lines/${name}.log`;
    expect(existsSync(path)).toBe(true);
    const lines = readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("#"));
    for (const mode of modesOf(name)) {
      const f = compileFilter(loadFilter(name, mode ? { mode } : {}));
      const hit = new Set<number>();
      // Each regex alone, so that an earlier regex matching the same line does not hide a later one.
      for (let i = 0; i < f.fail.length; i++) {
        const single = { ...f, fail: [f.fail[i]!], dispatch: null };
        const m = new FilterMatcher(single, { now: () => Date.now() / 1000 });
        for (const l of lines) if (m.processLine(l).regex === 0) hit.add(i);
      }
      const missed = f.fail.map((r, i) => (hit.has(i) ? null : `#${i} ${r.text}`)).filter(Boolean);
      expect({ mode, missed }).toEqual({ mode, missed: [] });
    }
  });

  test("no greedy catch-all before <HOST> unless anchored at the end", () => {
    for (const mode of modesOf(name)) {
      for (const r of loadFilter(name, mode ? { mode } : {}).failregex) {
        const greedy = /\.[+*](?!\?)[^$^]*<HOST>/.test(r.text);
        const anchoredEnd = /\$\)*\s*$/.test(r.text);
        expect({ where: r.where, bad: greedy && !anchoredEnd }).toEqual({ where: r.where, bad: false });
      }
    }
  });

  test("adversarial lines stay under 1 ms a line (ReDoS)", async () => {
    for (const mode of modesOf(name)) {
      const proc = Bun.spawn(
        [process.execPath, `${root}scripts/redos-check.ts`, name, ...(mode ? ["--mode", mode] : [])],
        {
          stdout: "pipe",
          stderr: "pipe",
        },
      );
      const timer = setTimeout(() => proc.kill(), 20000);
      const out = await new Response(proc.stdout).text();
      const code = await proc.exited;
      clearTimeout(timer);
      expect({ mode, code, err: code === 0 ? "" : await new Response(proc.stderr).text() }).toEqual({
        mode,
        code: 0,
        err: "",
      });
      const r = JSON.parse(out.trim().split("\n").pop()!);
      expect({ mode, slow: r.ms / r.lines >= 1 ? r : null }).toEqual({ mode, slow: null });
    }
  }, 60000);
});
