/**
 * The built-in filters: `filters/*.toml`, embedded in the compiled binary (bun build
 * --compile with the files as extra entry points), read from the source tree otherwise.
 * Files whose name starts with `_` hold shared definitions, not filters.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { FilterSource } from "./format.ts";

interface Embedded {
  name: string;
}

function embeddedNames(): string[] {
  return (Bun.embeddedFiles as unknown as Embedded[]).map((f) => f.name).filter((n) => n.endsWith(".toml"));
}

const EMBEDDED = embeddedNames();
const SOURCE_DIR = join(import.meta.dir, "..", "..", "filters");

/** Where built-in filter files are read from: the binary itself, or the source tree. */
export function builtinOrigin(): string {
  return EMBEDDED.length > 0 ? "embedded" : SOURCE_DIR;
}

let listed: string[] | null = null;

function fileNames(): string[] {
  if (EMBEDDED.length > 0) return EMBEDDED;
  if (listed === null)
    listed = existsSync(SOURCE_DIR) ? readdirSync(SOURCE_DIR).filter((n) => n.endsWith(".toml")) : [];
  return listed;
}

/** Names of the built-in filters, sorted. */
export function builtinFilterNames(): string[] {
  return fileNames()
    .filter((n) => !n.startsWith("_"))
    .map((n) => n.slice(0, -5))
    .sort();
}

/** A built-in filter or definitions file by name (`sshd`, `_common`), or null. */
export function builtinSource(name: string): FilterSource | null {
  if (!/^[\w.-]+$/.test(name)) return null;
  const file = `${name}.toml`;
  if (!fileNames().includes(file)) return null;
  const path = EMBEDDED.length > 0 ? `/$bunfs/root/${file}` : join(SOURCE_DIR, file);
  return { name, file: `filters/${file}`, text: readFileSync(path, "utf8") };
}
