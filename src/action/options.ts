/**
 * Option schemas for the action kinds: each kind declares its keys and their types once; the same
 * declaration validates the TOML table (errors as "key: what is wrong") and reads typed values.
 */
import { Fail2tsError } from "../util/errors.ts";

export type OptionKind =
  | "string"
  | "boolean"
  | "int"
  | "duration" // seconds as a number, or "500ms", "10s", "5m", "1h", "1d"
  | "string[]"
  | "string|string[]"
  | "headers" // table of string → string
  | { oneOf: readonly string[] };

export type Schema = Record<string, OptionKind>;

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?$/;
const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Milliseconds for a duration option value, or undefined when it is not one. */
export function durationMs(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) && v >= 0 ? v * 1000 : undefined;
  if (typeof v !== "string") return undefined;
  const m = DURATION.exec(v.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2] ?? "s"]!;
}

function describe(kind: OptionKind): string {
  if (typeof kind === "object") return `one of ${kind.oneOf.map((s) => JSON.stringify(s)).join(", ")}`;
  switch (kind) {
    case "string":
      return "a string";
    case "boolean":
      return "true or false";
    case "int":
      return "an integer";
    case "duration":
      return 'a duration (seconds, or "10s", "500ms", "5m")';
    case "string[]":
      return "an array of strings";
    case "string|string[]":
      return "a string or an array of strings";
    case "headers":
      return "a table of strings";
  }
}

function fits(kind: OptionKind, v: unknown): boolean {
  if (typeof kind === "object") return typeof v === "string" && kind.oneOf.includes(v);
  switch (kind) {
    case "string":
      return typeof v === "string";
    case "boolean":
      return typeof v === "boolean";
    case "int":
      return typeof v === "number" && Number.isInteger(v);
    case "duration":
      return durationMs(v) !== undefined;
    case "string[]":
      return Array.isArray(v) && v.every((x) => typeof x === "string");
    case "string|string[]":
      return typeof v === "string" || (Array.isArray(v) && v.every((x) => typeof x === "string"));
    case "headers":
      return (
        typeof v === "object" &&
        v !== null &&
        !Array.isArray(v) &&
        Object.values(v).every((x) => typeof x === "string")
      );
  }
}

/** Errors for unknown keys and values of the wrong type. `type` is accepted and ignored. */
export function checkSchema(schema: Schema, options: Record<string, unknown>): string[] {
  const errors: string[] = [];
  for (const [key, value] of Object.entries(options)) {
    if (key === "type") continue;
    const kind = schema[key];
    if (kind === undefined) {
      const known = Object.keys(schema).sort().join(", ");
      errors.push(`${key}: unknown option (known: ${known || "none"})`);
    } else if (!fits(kind, value)) {
      errors.push(`${key}: must be ${describe(kind)}, got ${JSON.stringify(value)}`);
    }
  }
  return errors;
}

/** Typed reads of an options table already checked with checkSchema. */
export class Options {
  constructor(
    readonly action: string,
    private readonly o: Record<string, unknown>,
  ) {}

  has(key: string): boolean {
    return this.o[key] !== undefined;
  }
  str(key: string, def: string): string;
  str(key: string): string | undefined;
  str(key: string, def?: string): string | undefined {
    const v = this.o[key];
    return typeof v === "string" ? v : def;
  }
  bool(key: string, def: boolean): boolean {
    const v = this.o[key];
    return typeof v === "boolean" ? v : def;
  }
  int(key: string, def: number): number {
    const v = this.o[key];
    return typeof v === "number" ? v : def;
  }
  ms(key: string, def: number): number {
    return durationMs(this.o[key]) ?? def;
  }
  list(key: string): string[] | undefined {
    const v = this.o[key];
    if (typeof v === "string") return [v];
    return Array.isArray(v) ? (v as string[]) : undefined;
  }
  headers(key: string): Record<string, string> {
    const v = this.o[key];
    return v && typeof v === "object" ? { ...(v as Record<string, string>) } : {};
  }
  /** A config error naming the action and key. */
  fail(key: string, msg: string): never {
    throw new Fail2tsError("config", `action ${this.action}: ${key}: ${msg}`);
  }
}
