#!/usr/bin/env bun
/**
 * Builds dist/fail2ts: one executable with the built-in filters embedded, and scan's native
 * engine (src/scan/engine.c) compiled by the system's C compiler and embedded too when there
 * is one (without it, the executable compiles the engine at run time with the TinyCC inside
 * Bun: the same results, about a third slower).
 * Usage: bun scripts/build.ts [--outfile PATH] [--no-bytecode]
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { Glob } from "bun";

const args = process.argv.slice(2);
const outIdx = args.indexOf("--outfile");
const outfile = outIdx >= 0 ? args[outIdx + 1]! : "dist/fail2ts";
const root = new URL("..", import.meta.url).pathname;
const filters = [...new Glob("filters/*.toml").scanSync({ cwd: root })].sort();

/** dist/engine.so from src/scan/engine.c, or null when no C compiler builds it. */
function buildEngine(): string | null {
  const out = "dist/engine.so";
  mkdirSync(`${root}/dist`, { recursive: true });
  rmSync(`${root}/${out}`, { force: true });
  for (const cc of [process.env.CC, "cc", "gcc", "clang"]) {
    if (!cc || !Bun.which(cc)) continue;
    const flags = ["-O2", "-shared", "-fPIC", "-fvisibility=default", "-Wall", "-Werror"];
    const r = Bun.spawnSync([cc, ...flags, "-o", out, "src/scan/engine.c"], { cwd: root, stderr: "pipe" });
    if (r.exitCode === 0 && existsSync(`${root}/${out}`)) return out;
    process.stderr.write(`${cc} could not build ${out}:\n${r.stderr.toString()}`);
  }
  process.stderr.write("no C compiler: scan's engine will be compiled at run time (TinyCC)\n");
  return null;
}

const engine = buildEngine();
const argv = [
  process.execPath,
  "build",
  "--compile",
  "--minify",
  ...(args.includes("--no-bytecode") ? [] : ["--bytecode"]),
  "main.ts",
  ...filters,
  ...(engine ? [engine] : []),
  "--loader",
  ".toml:file",
  "--loader",
  ".so:file",
  "--asset-naming=[name].[ext]",
  "--outfile",
  outfile,
];
const proc = Bun.spawnSync(argv, { cwd: root, stdout: "pipe", stderr: "pipe" });
if (proc.exitCode !== 0) {
  process.stderr.write(proc.stdout.toString() + proc.stderr.toString());
  process.exit(proc.exitCode ?? 1);
}
console.log(`built ${outfile} with ${filters.length} filter files${engine ? ` and ${engine}` : ""}`);
