/**
 * Fail2ban's readers of files with a [Definition] and an [Init] section (filters and actions):
 * [Definition] options interpolated with the jail's options and the `name[key=value]` options,
 * [Init] values as defaults for the latter (and as `known/<name>`), then `<tag>` substitution
 * across all of them (DefinitionInitConfigReader).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { Fail2tsError } from "../util/errors.ts";
import { IniCache, IniNoOption, IniNoSection, IniSet, type Options } from "./ini.ts";
import { substituteRecursiveTags } from "./tags.ts";
import { flat, type Text, text } from "./text.ts";

export type OptType = "string" | "int" | "bool";

/**
 * The files Fail2ban reads for `basedir/name`: name.conf, name.d/*.conf, name.local,
 * name.d/*.local (those that exist).
 */
export function configFilesFor(basedir: string, name: string): string[] {
  const base = join(basedir, name);
  const dropins = (ext: string) => {
    const dir = `${base}.d`;
    try {
      if (!statSync(dir).isDirectory()) return [];
      return readdirSync(dir)
        .filter((n) => n.endsWith(ext) && !n.startsWith("."))
        .sort()
        .map((n) => join(dir, n));
    } catch {
      return [];
    }
  };
  return [`${base}.conf`, ...dropins(".conf"), `${base}.local`, ...dropins(".local")].filter((f) =>
    existsSync(f),
  );
}

/** Options from a `name[k=v]` reference (or a jail), as Texts placed at `where`. */
export function optionsAt(opts: Record<string, string>, where: string): Options {
  const m: Options = new Map();
  for (const [k, v] of Object.entries(opts)) m.set(k, text(v, where));
  return m;
}

export class DefinitionInitReader {
  readonly cfg: IniSet;
  /** Options given with the reference, then [Init]'s (and known/...). */
  readonly initOpts: Options;
  private pOpts: Options = new Map();
  private opts: Options = new Map();
  private readonly defCache = new Map<string, Text | null>();

  constructor(
    readonly configOpts: Record<string, OptType>,
    initOpts: Options,
    cache: IniCache = new IniCache(),
  ) {
    this.cfg = new IniSet(cache);
    this.initOpts = new Map(initOpts);
  }

  /** Reads `basedir/name` (name.conf, name.d/*.conf, name.local, name.d/*.local). */
  readStandard(basedir: string, name: string): string[] {
    const files = configFilesFor(basedir, name);
    if (files.length === 0) return [];
    return this.cfg.read(files);
  }

  /** Reads one file explicitly (with its includes and .local). */
  readExplicit(file: string): string[] {
    return this.cfg.read([file]);
  }

  /**
   * Fail2ban's getOptions: [Definition] options not given by the jail (`pOpts`), then [Init]
   * options as defaults of the reference options; with `all`, every [Definition] option.
   */
  getOptions(pOpts0?: Options, all = false): void {
    let pOpts: Options = pOpts0 ?? new Map();
    if (this.initOpts.size > 0) pOpts = new Map([...pOpts, ...this.initOpts]);
    const opts: Options = new Map();
    for (const name of Object.keys(this.configOpts)) {
      if (pOpts.has(name)) continue;
      try {
        opts.set(name, this.cfg.get("Definition", name, { vars: pOpts }));
      } catch (e) {
        if (e instanceof IniNoSection || e instanceof IniNoOption) continue;
        throw e;
      }
    }
    this.opts = opts;
    this.pOpts = pOpts;
    if (this.cfg.hasSection("Init")) {
      for (const opt of this.cfg.options("Init", false)) {
        if (opt === "__name__") continue;
        let v: Text | undefined;
        if (!opt.startsWith("known/")) {
          v = this.cfg.get("Init", opt);
          this.initOpts.set(`known/${opt}`, v);
        }
        if (!this.initOpts.has(opt)) this.initOpts.set(opt, v ?? this.cfg.get("Init", opt));
      }
    }
    if (all && this.cfg.hasSection("Definition")) {
      for (const opt of this.cfg.options("Definition", false)) {
        if (opt === "__name__" || this.opts.has(opt)) continue;
        this.opts.set(opt, this.cfg.get("Definition", opt));
      }
    }
  }

  /** A [Definition] option interpolated with the given options (null when there is none). */
  getCombOption(name: string): Text | null {
    if (this.defCache.has(name)) return this.defCache.get(name)!;
    let v: Text | null;
    try {
      v = this.cfg.getEx("Definition", name, { vars: this.pOpts });
    } catch (e) {
      if (!(e instanceof IniNoSection || e instanceof IniNoOption)) throw e;
      v = null;
    }
    this.defCache.set(name, v);
    return v;
  }

  /** All options with `<tag>`s substituted (Fail2ban's getCombined), not type-converted. */
  getCombined(ignore: Iterable<string> = [], conditional = ""): Options {
    const combined: Options = new Map([...this.opts, ...this.initOpts]);
    if (combined.size === 0) return new Map();
    const ign = new Set(ignore);
    for (const n of combined.keys()) {
      const m = /^(\w+)(\?.+)$/.exec(n);
      if (m) ign.add(m[1]!);
    }
    return substituteRecursiveTags(combined, {
      ignore: ign,
      addrepl: (tag) => this.getCombOption(tag),
      ...(conditional ? { conditional } : {}),
    });
  }
}

/** An int option as Fail2ban converts it (Python int(): optional sign, digits, spaces around). */
export function intOption(v: Text, what: string, where: string): number {
  const s = flat(v).trim();
  if (!/^[+-]?\d+$/.test(s))
    throw new Fail2tsError("config", `${what}: expected a whole number, got ${JSON.stringify(s)}`, where);
  return Number(s);
}
