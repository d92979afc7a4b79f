/** The filter stage: load a filter by reference, compile it, run it over lines. */
import { existsSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import { loadFail2banFilter } from "../fail2ban/filter.ts";
import { Fail2tsError } from "../util/errors.ts";
import { builtinSource } from "./builtin.ts";
import { type CompiledFilter, type CompileOptions, compileFilter } from "./compile.ts";
import { type FilterSource, type FilterSpec, loadFilterSpec, parseFilterRef } from "./format.ts";

export { builtinFilterNames, builtinSource } from "./builtin.ts";
export type { CompiledFilter, CompileOptions } from "./compile.ts";
export { compileFilter } from "./compile.ts";
export type { FilterSpec, RegexEntry } from "./format.ts";
export { loadFilterSpec, parseFilterRef } from "./format.ts";
export type { Failure, LineResult, MatcherOptions } from "./matcher.ts";
export { FilterMatcher } from "./matcher.ts";

/** Resolves includes: next to a file filter first, then the built-in definitions. */
function resolverFor(dir: string | null) {
  return (name: string): FilterSource | null => {
    if (dir) {
      const p = `${dir}/${name}.toml`;
      if (existsSync(p)) return { name, file: p, text: readFileSync(p, "utf8") };
    }
    return builtinSource(name);
  };
}

export function isFilterPath(name: string): boolean {
  return name.includes("/") || name.endsWith(".toml") || name.endsWith(".conf");
}

/**
 * Loads a filter reference: a built-in name or a path to a .toml file, with options in
 * brackets (`sshd[mode=aggressive]`); `extra` options (e.g. from --opt) override them.
 */
export function loadFilter(ref: string, extra: Record<string, string> = {}): FilterSpec {
  const { name, options } = parseFilterRef(ref);
  const opts = { ...options, ...extra };
  if (isFilterPath(name)) {
    if (name.endsWith(".conf") || name.endsWith(".local")) return loadFail2banFilter(name, opts);
    let text: string;
    try {
      text = readFileSync(name, "utf8");
    } catch (err) {
      throw new Fail2tsError("io", `cannot read filter file: ${(err as Error).message}`, name);
    }
    const slash = name.lastIndexOf("/");
    const src = { name: basename(name, ".toml"), file: name, text };
    return loadFilterSpec(src, opts, resolverFor(slash >= 0 ? name.slice(0, slash) : "."));
  }
  const src = builtinSource(name);
  if (!src)
    throw new Fail2tsError(
      "usage",
      `no built-in filter named ${JSON.stringify(name)} (see: fail2ts filters)`,
    );
  return loadFilterSpec(src, opts, resolverFor(null));
}

/** Loads and compiles. */
export function openFilter(
  ref: string,
  extra: Record<string, string> = {},
  opts: CompileOptions = {},
): CompiledFilter {
  return compileFilter(loadFilter(ref, extra), opts);
}
