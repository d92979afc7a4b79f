/**
 * fail2ts's filter format: one TOML file per filter (see filters/README.md).
 *
 *   description, include, [options], [definitions], prefregex, failregex, ignoreregex,
 *   datepattern, maxlines, journalmatch, logtimezone
 *
 * `%(name)s` interpolates an option or a definition (nested: `%(mdre_%(mode)s)s`); a list
 * entry that is exactly `%(name)s` of a list definition splices that list. Resolution is done
 * here, once; the result is a FilterSpec of plain regex strings, each with its file:line.
 */
import { parseToml, type TomlTable, whereOf } from "../config/toml.ts";
import { Fail2tsError } from "../util/errors.ts";

export interface FilterSource {
  name: string;
  /** Shown in messages: a path, or `builtin:NAME`. */
  file: string;
  text: string;
}

export type SourceResolver = (name: string) => FilterSource | null;

export interface RegexEntry {
  /** Python-syntax regex with Fail2ban tags, after interpolation. */
  text: string;
  where: string;
}

export interface FilterSpec {
  name: string;
  file: string;
  description: string;
  options: Record<string, string>;
  prefregex?: RegexEntry;
  failregex: RegexEntry[];
  ignoreregex: RegexEntry[];
  datepattern?: string;
  maxlines: number;
  journalmatch?: string;
  logtimezone?: string;
  /** Option defaults the file declares (for `filters show`). */
  declaredOptions: Record<string, string>;
  /** Definition names whose name starts with a known option value prefix, for listing modes. */
  definitions: string[];
}

const FILTER_KEYS = new Set([
  "description",
  "include",
  "options",
  "definitions",
  "prefregex",
  "failregex",
  "ignoreregex",
  "datepattern",
  "maxlines",
  "journalmatch",
  "logtimezone",
]);

type Def = string | string[];

interface Scope {
  src: FilterSource;
  defs: Map<string, Def>;
}

const REF = /%\(([^()%]+)\)s/;

class Resolver {
  constructor(
    private readonly scopes: Scope[],
    private readonly options: Record<string, string>,
  ) {}

  lookup(name: string): Def | undefined {
    if (Object.hasOwn(this.options, name)) return this.options[name];
    for (const s of this.scopes) {
      const d = s.defs.get(name);
      if (d !== undefined) return d;
    }
    return undefined;
  }

  /** Resolves every `%(x)s` in a string; lists are an error in string context. */
  str(value: string, where: string, depth = 0): string {
    if (depth > 30)
      throw new Fail2tsError(
        "config",
        "interpolation nests too deep (a definition refers to itself?)",
        where,
      );
    let out = value;
    for (let guard = 0; guard < 1000; guard++) {
      const m = REF.exec(out);
      if (!m) return out;
      const v = this.lookup(m[1]!);
      if (v === undefined)
        throw new Fail2tsError("config", `unknown option or definition %(${m[1]})s`, where);
      if (Array.isArray(v)) {
        throw new Fail2tsError("config", `%(${m[1]})s is a list; use it as a whole list entry`, where);
      }
      out = out.slice(0, m.index) + this.str(v, where, depth + 1) + out.slice(m.index + m[0].length);
    }
    throw new Fail2tsError("config", "interpolation does not terminate", where);
  }

  /** Resolves a list of regex entries, splicing list definitions. */
  list(values: readonly string[], where: (item: string) => string, depth = 0): RegexEntry[] {
    const out: RegexEntry[] = [];
    for (const raw of values) {
      const w = where(raw);
      const inner = wholeReference(raw.trim());
      if (inner !== null) {
        const name = this.str(inner, w, depth);
        const v = this.lookup(name);
        if (v === undefined) throw new Fail2tsError("config", `unknown option or definition %(${name})s`, w);
        if (Array.isArray(v)) {
          if (depth > 30) throw new Fail2tsError("config", "list definitions nest too deep", w);
          const scope = this.scopes.find((s) => s.defs.get(name) === v);
          const inner = scope
            ? (item: string) => whereOf(scope.src.text, scope.src.file, ["definitions", name], item)
            : where;
          out.push(...this.list(v, inner, depth + 1));
          continue;
        }
        const text = this.str(v, w, depth + 1);
        if (text.trim() !== "") out.push({ text, where: w });
        continue;
      }
      const text = this.str(raw, w);
      if (text.trim() !== "") out.push({ text, where: w });
    }
    return out;
  }
}

/** `%(name)s` or `%(a_%(b)s)s` as a whole entry: the inner name; null for anything else. */
function wholeReference(s: string): string | null {
  if (!s.startsWith("%(") || !s.endsWith(")s")) return null;
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    if (s.startsWith("%(", i)) {
      depth++;
      i++;
    } else if (s.startsWith(")s", i)) {
      depth--;
      i++;
      if (depth === 0 && i !== s.length - 1) return null;
    }
  }
  return depth === 0 ? s.slice(2, -2) : null;
}

function expectString(v: unknown, what: string, where: string): string {
  if (typeof v !== "string") throw new Fail2tsError("config", `${what}: expected a string`, where);
  return v;
}

function expectStrings(v: unknown, what: string, where: string): string[] {
  if (typeof v === "string") return [v];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw new Fail2tsError("config", `${what}: expected a list of strings`, where);
  }
  return v as string[];
}

function readDefs(src: FilterSource, table: TomlTable): Map<string, Def> {
  const defs = new Map<string, Def>();
  const d = table.definitions;
  if (d === undefined) return defs;
  const where = whereOf(src.text, src.file, ["definitions"]);
  if (typeof d !== "object" || d === null || Array.isArray(d)) {
    throw new Fail2tsError("config", "definitions: expected a table", where);
  }
  for (const [k, v] of Object.entries(d as TomlTable)) {
    const w = whereOf(src.text, src.file, ["definitions", k]);
    defs.set(
      k,
      Array.isArray(v) ? expectStrings(v, `definitions.${k}`, w) : expectString(v, `definitions.${k}`, w),
    );
  }
  return defs;
}

interface IncludeFile {
  defs: Map<string, Def>;
  includes: string[];
}

/** Definitions files read so far (`_common` is included by most filters): by file and text. */
const includeFiles = new Map<string, IncludeFile>();

function includeFile(src: FilterSource): IncludeFile {
  const key = `${src.file}\u0000${src.text}`;
  let f = includeFiles.get(key);
  if (f) return f;
  const table = parseToml(src.text, src.file);
  f = {
    defs: readDefs(src, table),
    includes: table.include === undefined ? [] : expectStrings(table.include, "include", src.file),
  };
  if (includeFiles.size >= 64) includeFiles.clear();
  includeFiles.set(key, f);
  return f;
}

/**
 * Loads one filter with option overrides (`mode=aggressive`). `resolve` finds included
 * definition files by name (`_common`).
 */
export function loadFilterSpec(
  src: FilterSource,
  overrides: Record<string, string>,
  resolve: SourceResolver,
): FilterSpec {
  const table = parseToml(src.text, src.file);
  const at = (...path: string[]) => whereOf(src.text, src.file, path);
  for (const key of Object.keys(table)) {
    if (!FILTER_KEYS.has(key))
      throw new Fail2tsError("config", `${key}: unknown key in a filter file`, at(key));
  }
  const scopes: Scope[] = [{ src, defs: readDefs(src, table) }];
  const includes = table.include === undefined ? [] : expectStrings(table.include, "include", at("include"));
  const seen = new Set([src.name]);
  const queue = [...includes];
  while (queue.length > 0) {
    const inc = queue.shift()!;
    if (seen.has(inc)) continue;
    seen.add(inc);
    const isrc = resolve(inc);
    if (!isrc)
      throw new Fail2tsError(
        "config",
        `include: no definitions file named ${JSON.stringify(inc)}`,
        at("include"),
      );
    const inc2 = includeFile(isrc);
    scopes.push({ src: isrc, defs: inc2.defs });
    queue.push(...inc2.includes);
  }

  const declared: Record<string, string> = {};
  if (table.options !== undefined) {
    const o = table.options;
    if (typeof o !== "object" || o === null || Array.isArray(o)) {
      throw new Fail2tsError("config", "options: expected a table", at("options"));
    }
    for (const [k, v] of Object.entries(o as TomlTable)) {
      if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
        throw new Fail2tsError("config", `options.${k}: expected a string`, at("options", k));
      }
      declared[k] = String(v);
    }
  }
  const options: Record<string, string> = { ...declared };
  for (const [k, v] of Object.entries(overrides)) {
    if (!Object.hasOwn(declared, k)) {
      const known = Object.keys(declared);
      throw new Fail2tsError(
        "config",
        `filter ${src.name} has no option ${JSON.stringify(k)}` +
          (known.length ? ` (options: ${known.join(", ")})` : " (it takes no options)"),
      );
    }
    options[k] = v;
  }
  // A mode must name a mode_<mode> definition: say so plainly instead of failing deep inside.
  const modes = [...scopes[0]!.defs.keys()].filter((d) => d.startsWith("mode_")).map((d) => d.slice(5));
  if (options.mode !== undefined && modes.length > 0 && !modes.includes(options.mode)) {
    throw new Fail2tsError(
      "config",
      `filter ${src.name} has no mode ${JSON.stringify(options.mode)} (modes: ${modes.join(", ")})`,
    );
  }
  const r = new Resolver(scopes, options);
  const listAt = (key: string) => (item: string) => whereOf(src.text, src.file, [key], item);

  let prefregex: RegexEntry | undefined;
  if (table.prefregex !== undefined) {
    const w = at("prefregex");
    const text = r.str(expectString(table.prefregex, "prefregex", w), w);
    if (text.trim() !== "") prefregex = { text, where: w };
  }
  const failregex =
    table.failregex === undefined
      ? []
      : r.list(expectStrings(table.failregex, "failregex", at("failregex")), listAt("failregex"));
  if (failregex.length === 0)
    throw new Fail2tsError("config", "failregex: a filter needs at least one", at("failregex"));
  const ignoreregex =
    table.ignoreregex === undefined
      ? []
      : r.list(expectStrings(table.ignoreregex, "ignoreregex", at("ignoreregex")), listAt("ignoreregex"));

  const optStr = (key: string): string | undefined => {
    const v = table[key];
    if (v === undefined) return undefined;
    const w = at(key);
    const s = r.str(expectString(v, key, w), w);
    return s === "" ? undefined : s;
  };
  let maxlines = 1;
  if (table.maxlines !== undefined) {
    const v =
      typeof table.maxlines === "string" ? Number(r.str(table.maxlines, at("maxlines"))) : table.maxlines;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 1000) {
      throw new Fail2tsError("config", "maxlines: expected a whole number from 1 to 1000", at("maxlines"));
    }
    maxlines = v;
  }
  const description =
    table.description === undefined ? "" : expectString(table.description, "description", at("description"));
  const defNames = scopes[0] ? [...scopes[0].defs.keys()] : [];
  const spec: FilterSpec = {
    name: src.name,
    file: src.file,
    description,
    options,
    failregex,
    ignoreregex,
    maxlines,
    declaredOptions: declared,
    definitions: defNames,
  };
  if (prefregex) spec.prefregex = prefregex;
  const datepattern = optStr("datepattern");
  if (datepattern !== undefined) spec.datepattern = datepattern;
  const journalmatch = optStr("journalmatch");
  if (journalmatch !== undefined) spec.journalmatch = journalmatch;
  const logtimezone = optStr("logtimezone");
  if (logtimezone !== undefined) spec.logtimezone = logtimezone;
  return spec;
}

/** Parses `name[key=value, key2="v w"]` (Fail2ban's filter reference syntax). */
export function parseFilterRef(ref: string): { name: string; options: Record<string, string> } {
  const m = /^\s*([^[\]]+?)\s*(?:\[(.*)\])?\s*$/s.exec(ref);
  if (!m) throw new Fail2tsError("usage", `bad filter reference ${JSON.stringify(ref)}`);
  const options: Record<string, string> = {};
  const body = m[2]?.trim();
  if (body) {
    const re = /\s*([\w.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([^,]*?))\s*(?:,|$)/gy;
    let pos = 0;
    while (pos < body.length) {
      re.lastIndex = pos;
      const o = re.exec(body);
      if (!o || o[0] === "") throw new Fail2tsError("usage", `bad filter options in ${JSON.stringify(ref)}`);
      options[o[1]!] = o[2] !== undefined ? o[2].replace(/\\(.)/g, "$1") : (o[3] ?? o[4] ?? "");
      pos = re.lastIndex;
    }
  }
  return { name: m[1]!, options };
}
