#!/usr/bin/env bun
/**
 * `npm test`: type check, lint, build, bun test, then the conformance ratchet (every filter
 * listed in test/conformance-perfect.txt must stay perfect). Ends with one line
 * `N passed, N failed`: bun test's own counts, plus one failure for each gate that failed.
 */
import { existsSync, readFileSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const bun = process.execPath;
let gateFailures = 0;

function step(name: string, argv: string[], opts: { capture?: boolean } = {}): { ok: boolean; out: string } {
  process.stdout.write(`\n== ${name}: ${argv.join(" ")}\n`);
  const p = Bun.spawnSync(argv, {
    cwd: root,
    stdout: opts.capture ? "pipe" : "inherit",
    stderr: opts.capture ? "pipe" : "inherit",
    env: { ...process.env, FORCE_COLOR: "0" },
  });
  const out = opts.capture ? `${p.stdout?.toString() ?? ""}${p.stderr?.toString() ?? ""}` : "";
  if (opts.capture) process.stdout.write(out);
  const ok = p.exitCode === 0;
  if (!ok) process.stdout.write(`== ${name} FAILED (exit ${p.exitCode})\n`);
  return { ok, out };
}

const tsc = `${root}node_modules/.bin/tsc`;
const biome = `${root}node_modules/.bin/biome`;
if (!step("typecheck", [tsc, "--noEmit", "-p", root]).ok) gateFailures++;
if (!step("lint", [biome, "check", "--diagnostic-level=error", root]).ok) gateFailures++;
const built = step("build", [bun, "scripts/build.ts"]).ok;
if (!built) gateFailures++;

// The end-to-end tests run the binary just built (test/helpers/cli.ts reads FAIL2TS_BIN).
if (built) process.env.FAIL2TS_BIN = `${root}dist/fail2ts`;
const test = step("bun test", [bun, "test", ...process.argv.slice(2)], { capture: true });
const pass = Number(/^\s*(\d+) pass$/m.exec(test.out)?.[1] ?? 0);
let fail = Number(/^\s*(\d+) fail$/m.exec(test.out)?.[1] ?? 0);
if (!test.ok && fail === 0) fail = 1; // bun test itself failed (e.g. a file did not load)

const scorer = `${root}../shared/conformance/run`;
const perfectList = `${root}test/conformance-perfect.txt`;
if (!existsSync(scorer)) {
  process.stdout.write("\n== conformance: skipped (../shared/conformance/run is not beside this checkout)\n");
} else if (built && existsSync(perfectList)) {
  const want = readFileSync(perfectList, "utf8")
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter(Boolean);
  const r = step("conformance", ["bash", scorer, "--bin", `${root}dist/fail2ts`, "--json"], {
    capture: true,
  });
  const json = r.out.split("\n").find((l) => l.startsWith("{"));
  const per: Record<string, [number, number]> = json ? JSON.parse(json).per_filter : {};
  const lost = want.filter((n) => !per[n] || per[n][0] !== per[n][1]);
  if (lost.length > 0) {
    process.stdout.write(
      `== conformance ratchet FAILED: no longer perfect: ${lost.map((n) => `${n} ${per[n]?.join("/") ?? "(not run)"}`).join(", ")}\n`,
    );
    gateFailures++;
  } else {
    process.stdout.write(`== conformance ratchet: all ${want.length} listed filters perfect\n`);
  }
}

console.log(`${pass} passed, ${fail + gateFailures} failed`);
process.exit(fail + gateFailures > 0 ? 1 : 0);
