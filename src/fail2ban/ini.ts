/**
 * Fail2ban's configuration files as Fail2ban reads them: Python's configparser (sections,
 * `key = value` or `key: value`, lower-cased keys, values continued by deeper indentation, `#`/`;`
 * full-line comments, ` ;` inline comments, [DEFAULT]), Fail2ban's `[INCLUDES] before/after`
 * with `.local` overlays, files merged in order with the overridden values kept in `KNOWN/<section>`,
 * conditional sections `[Init?family=inet6]`, and `%(name)s` interpolation including
 * `%(section/name)s`, `%(known/name)s`, `%(default/name)s` and `%(__name__)s`.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { Fail2tsError } from "../util/errors.ts";
import { concat, flat, inline, type Piece, slice, type Text, text, whereAt } from "./text.ts";

export type Options = Map<string, Text>;

/** One file parsed on its own. */
export interface IniFile {
  file: string;
  defaults: Options;
  /** Sections in file order; names are case-sensitive. */
  sections: Map<string, Options>;
}

export class IniNoSection extends Fail2tsError {
  constructor(readonly section: string) {
    super("config", `no section [${section}]`);
  }
}

export class IniNoOption extends Fail2tsError {
  constructor(
    readonly section: string,
    readonly option: string,
  ) {
    super("config", `no option ${JSON.stringify(option)} in section [${section}]`);
  }
}

const SECTION = /^\[(.+)\]/;
const OPTION = /^(.*?)\s*([=:])\s*(.*)$/;
const CONDITIONAL = /^(\w+)(\?.+)$/;
const MAX_DEPTH = 10;

/** Parses one file's text exactly as Python's ConfigParser does with Fail2ban's settings. */
export function parseIni(src: string, file: string): IniFile {
  const out: IniFile = { file, defaults: new Map(), sections: new Map() };
  const raw = new Map<Options, Map<string, Piece[] | null>>();
  const rawOf = (o: Options) => {
    let r = raw.get(o);
    if (!r) raw.set(o, (r = new Map()));
    return r;
  };
  let cur: Map<string, Piece[] | null> | null = null;
  let sectName: string | null = null;
  let optName: string | null = null;
  let indentLevel = 0;
  const seen = new Set<string>();
  const errors: string[] = [];
  const lines = src.split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  for (let n = 0; n < lines.length; n++) {
    let line = lines[n]!;
    if (n === 0 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    const w = `${file}:${n + 1}`;
    let commentStart: number | null = null;
    // inline comments: ';' at the start or after whitespace
    for (let i = line.indexOf(";"); i >= 0; i = line.indexOf(";", i + 1)) {
      if (i === 0 || /\s/.test(line[i - 1]!)) {
        commentStart = i;
        break;
      }
    }
    const stripped = line.trim();
    if (stripped.startsWith("#") || stripped.startsWith(";")) commentStart = 0;
    const value = (commentStart === null ? line : line.slice(0, commentStart)).trim();
    if (value === "") {
      if (commentStart === null && cur && optName) {
        const v = cur.get(optName);
        if (v) v.push({ s: "", w });
      }
      continue;
    }
    const firstNonSpace = line.search(/\S/);
    const indent = firstNonSpace < 0 ? 0 : firstNonSpace;
    if (cur && optName && indent > indentLevel) {
      const v = cur.get(optName);
      if (v) v.push({ s: value, w });
      continue;
    }
    indentLevel = indent;
    const sm = SECTION.exec(value);
    if (sm) {
      const name = sm[1]!;
      if (name === "DEFAULT") cur = rawOf(out.defaults);
      else {
        if (seen.has(name))
          throw new Fail2tsError("config", `section [${name}] appears twice in this file`, w);
        seen.add(name);
        let sect = out.sections.get(name);
        if (!sect) out.sections.set(name, (sect = new Map()));
        cur = rawOf(sect);
      }
      sectName = name;
      optName = null;
      continue;
    }
    if (!cur) throw new Fail2tsError("config", "no [section] header before this line", w);
    const om = OPTION.exec(value);
    if (!om || om[1]!.trimEnd() === "") {
      errors.push(`${w}: cannot parse ${JSON.stringify(line)}`);
      continue;
    }
    optName = om[1]!.trimEnd().toLowerCase();
    const key = `${sectName}\u0000${optName}`;
    if (seen.has(key))
      throw new Fail2tsError("config", `option ${JSON.stringify(optName)} appears twice in [${sectName}]`, w);
    seen.add(key);
    cur.set(optName, [{ s: om[3]!.trim(), w }]);
  }
  if (errors.length > 0)
    throw new Fail2tsError(
      "config",
      `not a Fail2ban config line\n  ${errors.join("\n  ")}`,
      errors[0]!.split(": ")[0],
    );
  // join multi-line values: "\n".join(lines).rstrip()
  for (const [opts, r] of raw) {
    for (const [k, pieces] of r) {
      if (!pieces) continue;
      const parts: Text[] = [];
      pieces.forEach((p, i) => {
        if (i > 0) parts.push(text("\n", pieces[i - 1]!.w));
        parts.push(text(p.s, p.w));
      });
      const joined = concat(...parts);
      const s = flat(joined);
      opts.set(k, slice(joined, 0, s.trimEnd().length));
    }
  }
  return out;
}

/** Parsed files by path, shared between the readers of one load (Fail2ban's share_config). */
export class IniCache {
  private readonly files = new Map<string, IniFile | null>();

  /** The parsed file, or null when it cannot be read (a missing include is skipped silently). */
  get(path: string): IniFile | null {
    if (this.files.has(path)) return this.files.get(path)!;
    let parsed: IniFile | null = null;
    try {
      if (statSync(path).isFile()) parsed = parseIni(readFileSync(path, "utf8"), path);
    } catch (e) {
      if (e instanceof Fail2tsError) throw e;
      parsed = null;
    }
    this.files.set(path, parsed);
    return parsed;
  }
}

/** A layered lookup (Python's ChainMap): the first map that has the key wins; writes go to the first. */
class ChainMap {
  constructor(readonly maps: Options[]) {}
  get(k: string): Text | undefined {
    for (const m of this.maps) {
      const v = m.get(k);
      if (v !== undefined) return v;
    }
    return undefined;
  }
  has(k: string): boolean {
    return this.maps.some((m) => m.has(k));
  }
  copy(): ChainMap {
    return new ChainMap([new Map(this.maps[0]), ...this.maps.slice(1)]);
  }
}

const KEYCRE = /^%\(([^)]+)\)s/;
const SECTION_OPTSUBST = /%\(([\w-]+\/([^)]+))\)s/g;
const SECTION_OPTNAME = /^([\w-]+)\/([^\s>]+)$/;

export interface GetOptions {
  vars?: Options | undefined;
  raw?: boolean;
}

/** Several files merged as Fail2ban merges them (SafeConfigParserWithIncludes). */
export class IniSet {
  readonly defaults: Options = new Map();
  readonly sections = new Map<string, Options>();
  /** Files read, in order. */
  readonly files: string[] = [];

  constructor(readonly cache: IniCache = new IniCache()) {}

  /** The files `names` and everything they include, in Fail2ban's order. */
  includesOf(names: string[], seen: string[] = []): string[] {
    const expanded: string[] = [];
    for (const f of names) {
      expanded.push(f);
      const local = f.replace(/\.[^./]*$/, "") + ".local";
      if (!names.includes(local) && existsSync(local) && statSync(local).isFile()) expanded.push(local);
    }
    const out: string[] = [];
    for (const f of expanded) out.push(...this.includesOne(f, seen));
    return out;
  }

  private includesOne(resource: string, seen: string[]): string[] {
    const parsed = this.cache.get(resource);
    if (!parsed) return [];
    const inc = parsed.sections.get("INCLUDES");
    const before: string[] = [];
    const after: string[] = [];
    if (inc) {
      const one = new IniSet(this.cache);
      one.mergeFile(parsed);
      for (const [opt, list] of [
        ["before", before],
        ["after", after],
      ] as const) {
        if (!inc.has(opt) && !parsed.defaults.has(opt)) continue;
        const v = flat(one.get("INCLUDES", opt));
        for (const name of v.split("\n")) {
          const r = isAbsolute(name) ? name : join(dirname(resource), name);
          if (seen.includes(r)) continue;
          list.push(...this.includesOf([r], [...seen, resource]));
        }
      }
    }
    return [...before, resource, ...after];
  }

  /** Reads files with their includes (Fail2ban's `read(filenames)`); returns the files read. */
  read(names: string[]): string[] {
    const read: string[] = [];
    for (const f of this.includesOf(names)) {
      const parsed = this.cache.get(f);
      if (!parsed) continue;
      this.mergeFile(parsed);
      read.push(f);
    }
    this.files.push(...read);
    return read;
  }

  /** Merges one parsed file: defaults, then sections (old values kept under KNOWN/<section>). */
  mergeFile(parsed: IniFile): void {
    for (const [k, v] of parsed.defaults) this.defaults.set(k, v);
    for (const [name0, s0] of parsed.sections) {
      let name = name0;
      let s = s0;
      const cond = CONDITIONAL.exec(name0);
      if (cond) {
        name = cond[1]!;
        s = new Map([...s0].map(([k, v]) => [k + cond[2]!, v]));
      }
      const s2 = this.sections.get(name);
      if (s2) {
        const known = new Map<string, Text>();
        for (const [k, v] of s2) if (s.has(k)) known.set(k, v);
        this.mergeSection(`KNOWN/${name}`, known);
        for (const [k, v] of s) s2.set(k, v);
      } else this.sections.set(name, new Map(s));
    }
  }

  mergeSection(section: string, options: Options, pref = ""): void {
    let sec = this.sections.get(section);
    if (!sec) this.sections.set(section, (sec = new Map()));
    for (const [k, v] of options) {
      if (!pref) sec.set(k, v);
      else if (!k.startsWith(pref) && k !== "__name__") sec.set(pref + k, v);
    }
  }

  mergeDefaults(d: Options): void {
    for (const [k, v] of d) this.defaults.set(k, v);
  }

  hasSection(section: string): boolean {
    return this.sections.has(section);
  }

  hasOption(section: string, option: string, withDefault = true): boolean {
    const o = option.toLowerCase();
    if (!withDefault) return this.sections.get(section)?.has(option) ?? false;
    if (section === "DEFAULT" || section === "") return this.defaults.has(o);
    const s = this.sections.get(section);
    return s ? s.has(o) || this.defaults.has(o) : false;
  }

  /** Option names of a section (own only, or with [DEFAULT]'s). */
  options(section: string, withDefault = false): string[] {
    const s = this.sections.get(section);
    if (!s) throw new IniNoSection(section);
    if (!withDefault) return [...s.keys()];
    return [...new Set([...s.keys(), ...this.defaults.keys()])];
  }

  /** Section names (without the KNOWN/ bookkeeping sections). */
  sectionNames(): string[] {
    return [...this.sections.keys()].filter((n) => !n.startsWith("KNOWN/"));
  }

  /** configparser's get: vars, then the section, then [DEFAULT]; interpolated unless raw. */
  get(section: string, option: string, o: GetOptions = {}): Text {
    let sect = this.sections.get(section);
    if (!sect) {
      if (section !== "DEFAULT") throw new IniNoSection(section);
      sect = new Map();
    }
    const vars = new Map<string, Text>();
    if (o.vars) for (const [k, v] of o.vars) vars.set(k.toLowerCase(), v);
    const map = new ChainMap([vars, sect, this.defaults]);
    const opt = option.toLowerCase();
    const value = map.get(opt);
    if (value === undefined) throw new IniNoOption(section, opt);
    if (o.raw) return value;
    const accum: Text[] = [];
    this.interpolate(section, opt, accum, value, map, 1);
    return concat(...accum);
  }

  /** Fail2ban's get_ex: `sec/opt` and `known/opt` names, else a plain get. */
  getEx(section: string, option: string, o: GetOptions = {}): Text {
    const m = option.includes("/") ? SECTION_OPTNAME.exec(option) : null;
    if (m) {
      const sec = m[1]!;
      const opt = m[2]!;
      const lwr = sec.toLowerCase();
      const tries = lwr === "known" ? [`KNOWN/${section}`, section] : [lwr === "default" ? "DEFAULT" : sec];
      for (const s of tries) {
        try {
          return this.get(s, opt, { raw: o.raw ?? false });
        } catch (e) {
          if (!(e instanceof IniNoSection || e instanceof IniNoOption)) throw e;
        }
      }
    }
    return this.get(section, option, o);
  }

  private interpolate(
    section: string,
    option: string,
    accum: Text[],
    rest0: Text,
    map0: ChainMap,
    depth: number,
  ): void {
    if (depth > MAX_DEPTH) {
      throw new Fail2tsError(
        "config",
        `%(…)s references nest deeper than ${MAX_DEPTH} in ${option}`,
        whereAt(rest0, 0),
      );
    }
    const map = map0.copy();
    map.maps[0]!.set("__name__", text(section, ""));
    this.mapSectionOptions(section, rest0, map);
    let rest = rest0;
    while (rest.length > 0) {
      const s = flat(rest);
      const p = s.indexOf("%");
      if (p < 0) {
        accum.push(rest);
        return;
      }
      if (p > 0) {
        accum.push(slice(rest, 0, p));
        rest = slice(rest, p);
      }
      const w = whereAt(rest, 0);
      const c = s[p + 1];
      if (c === "%") {
        accum.push(text("%", w));
        rest = slice(rest, 2);
      } else if (c === "(") {
        const m = KEYCRE.exec(s.slice(p));
        if (!m)
          throw new Fail2tsError(
            "config",
            `bad interpolation reference ${JSON.stringify(s.slice(p, p + 40))}`,
            w,
          );
        const name = m[1]!.toLowerCase();
        rest = slice(rest, m[0].length);
        const v = map.get(name);
        if (v === undefined) {
          throw new Fail2tsError(
            "config",
            `${option}: %(${m[1]})s refers to an option that does not exist in [${section}]`,
            w,
          );
        }
        if (flat(v).includes("%")) {
          const sub: Text[] = [];
          this.interpolate(section, option, sub, v, map, depth + 1);
          accum.push(inline(concat(...sub), w));
        } else accum.push(inline(v, w));
      } else {
        throw new Fail2tsError(
          "config",
          `'%' must be followed by '%' or '(' (write %% for a percent sign)`,
          w,
        );
      }
    }
  }

  /** `%(section/option)s`: put the raw value of that option in the lookup map. */
  private mapSectionOptions(section: string, rest: Text, map: ChainMap): void {
    const s = flat(rest);
    if (!s.includes("/") || !s.includes("%(")) return;
    for (const m of s.matchAll(SECTION_OPTSUBST)) {
      const sopt = m[1]!;
      const opt = m[2]!;
      if (map.has(sopt)) continue;
      const sec = sopt.slice(0, sopt.length - opt.length - 1);
      const lwr = sec.toLowerCase();
      let v: Text | undefined;
      let useDefault = false;
      if (lwr === "default") useDefault = true;
      else if (lwr === "known") {
        v = this.sections.get(`KNOWN/${section}`)?.get(opt);
        if (v === undefined) useDefault = true;
      } else {
        const sd = this.sections.get(sec);
        if (!sd) continue;
        v = sd.get(opt);
        if (v === undefined) useDefault = true;
      }
      if (useDefault) {
        v = this.defaults.get(opt);
        if (v === undefined) continue;
      }
      map.maps[0]!.set(sopt, v!);
    }
  }
}

/** Python's bool parsing of Fail2ban options ("1", "on", "true", "yes"). */
export function asBool(v: string): boolean {
  return ["1", "on", "true", "yes"].includes(v.trim().toLowerCase());
}
