/** Option parsers shared by subcommands. */
import { InvalidArgumentError } from "@commander-js/extra-typings";

/** Collects `--opt key=value` into a record. */
export function collectKeyValue(value: string, prev: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError(`expected KEY=VALUE, got ${JSON.stringify(value)}`);
  return { ...prev, [value.slice(0, eq).trim()]: value.slice(eq + 1) };
}

export function parseEpoch(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected epoch seconds");
  return n;
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("expected a whole number");
  return n;
}

export function collectList(value: string, prev: string[] = []): string[] {
  return [...prev, value];
}

/** Options of the commands that change bans (ban, unban, flush), spread into `.option(...)`. */
export const DRY_RUN = [
  "-n, --dry-run",
  "change nothing: print the commands and writes it would make",
] as const;
export const QUIET = ["-q, --quiet", "print nothing (errors still go to stderr)"] as const;
