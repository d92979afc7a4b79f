/** Option parsers shared by subcommands. */
import { InvalidArgumentError } from "@commander-js/extra-typings";
import { parseDuration } from "../util/duration.ts";

/** Collects `--opt key=value` into a record. */
export function collectKeyValue(value: string, prev: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError(`expected KEY=VALUE, got ${JSON.stringify(value)}`);
  return { ...prev, [value.slice(0, eq).trim()]: value.slice(eq + 1) };
}

/** A point in time as epoch seconds: epoch seconds, a date (2024-05-01, 2024-05-01T10:00), or an age (2h, 7d ago). */
export function parseTime(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const d = parseDuration(v.replace(/ ago$/, ""));
  if (d !== null && d > 0 && /ago$|^\d+[a-z]+$/.test(v)) return Date.now() / 1000 - d;
  const t = Date.parse(v);
  if (Number.isNaN(t))
    throw new InvalidArgumentError(
      "expected a date (2024-05-01, 2024-05-01T10:00), epoch seconds, or an age (2h, 7d)",
    );
  return t / 1000;
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
