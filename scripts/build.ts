#!/usr/bin/env bun
/**
 * Builds dist/fail2ts: one executable with the built-in filters embedded.
 * Usage: bun scripts/build.ts [--outfile PATH] [--no-bytecode]
 */
import { Glob } from "bun";

const args = process.argv.slice(2);
const outIdx = args.indexOf("--outfile");
const outfile = outIdx >= 0 ? args[outIdx + 1]! : "dist/fail2ts";
const root = new URL("..", import.meta.url).pathname;
const filters = [...new Glob("filters/*.toml").scanSync({ cwd: root })].sort();
const argv = [
  process.execPath,
  "build",
  "--compile",
  "--minify",
  ...(args.includes("--no-bytecode") ? [] : ["--bytecode"]),
  "main.ts",
  ...filters,
  "--loader",
  ".toml:file",
  "--asset-naming=[name].[ext]",
  "--outfile",
  outfile,
];
const proc = Bun.spawnSync(argv, { cwd: root, stdout: "pipe", stderr: "pipe" });
if (proc.exitCode !== 0) {
  process.stderr.write(proc.stdout.toString() + proc.stderr.toString());
  process.exit(proc.exitCode ?? 1);
}
console.log(`built ${outfile} with ${filters.length} filter files`);
