/**
 * A Fail2ban filter file (filter.d/NAME.conf, with its .local, NAME.d/ drop-ins and includes) →
 * fail2ts's FilterSpec, so the engine runs it unchanged. Every regex keeps the file:line it was
 * written on.
 */
import { basename, dirname } from "node:path";
import type { FilterSpec, RegexEntry } from "../filter/format.ts";
import { expandTags } from "../filter/tags.ts";
import { Fail2tsError } from "../util/errors.ts";
import { rewriteConditionals } from "./cond.ts";
import { DefinitionInitReader, intOption, type OptType, optionsAt } from "./definit.ts";
import { IniCache, type Options } from "./ini.ts";
import { firstWhere, flat, splitLines, type Text } from "./text.ts";

export const FILTER_OPTS: Record<string, OptType> = {
  usedns: "string",
  prefregex: "string",
  ignoreregex: "string",
  failregex: "string",
  maxlines: "int",
  datepattern: "string",
  journalmatch: "string",
};

/** The filter options a jail may set itself (they override the filter's). */
export const FILTER_OPT_NAMES: string[] = Object.keys(FILTER_OPTS);

export class Fail2banFilterReader extends DefinitionInitReader {
  /** The file name without .conf (sshd). */
  readonly name: string;
  files: string[] = [];

  /**
   * `file` is a path to NAME.conf (or NAME.local). In a `filter.d` directory the filter is read
   * the standard way (NAME.conf, NAME.d/*.conf, NAME.local, NAME.d/*.local); elsewhere the file
   * alone, with its includes and its .local.
   */
  constructor(
    readonly file: string,
    refOpts: Options,
    cache: IniCache = new IniCache(),
  ) {
    super(FILTER_OPTS, refOpts, cache);
    this.name = basename(file).replace(/\.(conf|local)$/, "");
  }

  read(): string[] {
    const dir = dirname(this.file);
    this.files =
      basename(dir) === "filter.d" ? this.readStandard(dir, this.name) : this.readExplicit(this.file);
    if (this.files.length === 0)
      throw new Fail2tsError("config", "cannot read the Fail2ban filter file", this.file);
    return this.files;
  }

  /** logtype from the backend (file, or journal for systemd) unless the reference or file sets it. */
  applyAutoOptions(backend: string): void {
    const lt = this.initOpts.get("logtype");
    if ((!lt || flat(lt) === "") && !this.cfg.hasOption("Definition", "logtype", false)) {
      this.initOpts.set("logtype", [{ s: backend.startsWith("systemd") ? "journal" : "file", w: "" }]);
    }
  }
}

function regexList(v: Text): RegexEntry[] {
  const out: RegexEntry[] = [];
  for (const line of splitLines(v)) {
    const s = flat(line);
    if (s === "") continue;
    const where = firstWhere(line);
    if (s.trim() === "") throw new Fail2tsError("config", "an empty regex", where);
    out.push({ text: rewriteConditionals(s, where), where });
  }
  return out;
}

/** A blank FilterSpec for a Fail2ban filter file. */
export function emptySpec(reader: Fail2banFilterReader): FilterSpec {
  return {
    name: reader.name,
    file: reader.file,
    description: `Fail2ban filter ${reader.file}`,
    options: {},
    failregex: [],
    ignoreregex: [],
    maxlines: 1,
    declaredOptions: {},
    definitions: [],
  };
}

/**
 * Adds the filter options of `opts` to `spec` as Fail2ban's stream would: failregex and
 * ignoreregex lines are added, journalmatch lines too, the others replace.
 */
export function fillSpec(spec: FilterSpec, opts: Options, extra: { usedns?: string } = {}): void {
  for (const [k, v] of opts) {
    const s = flat(v);
    const where = firstWhere(v) || spec.file;
    if (k === "failregex") spec.failregex.push(...regexList(v));
    else if (k === "ignoreregex") spec.ignoreregex.push(...regexList(v));
    else if (k === "prefregex") {
      if (s.trim() === "") delete spec.prefregex;
      else spec.prefregex = { text: rewriteConditionals(s, where), where };
    } else if (k === "maxlines") spec.maxlines = intOption(v, "maxlines", where);
    else if (k === "datepattern") {
      if (s === "") delete spec.datepattern;
      else spec.datepattern = s;
    } else if (k === "journalmatch") {
      const lines = s
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean);
      if (lines.length)
        spec.journalmatch = [...(spec.journalmatch ? [spec.journalmatch] : []), ...lines].join(" + ");
    } else if (k === "usedns") extra.usedns = s;
  }
}

const ID_GROUP = /\(\?P<(?:fid|ip4|ip6|dns)>/;
const PRESENT_GROUP = /\(\?P<(?:fid|ip4|ip6|dns|mlfid)>/;

/**
 * Fail2ban refuses a failregex that cannot name an address or failure id (no <HOST>, <ADDR>,
 * <F-ID>..., and no <F-MLFID> in the prefregex): a mistyped tag would otherwise never match.
 */
export function checkFailureIds(spec: FilterSpec): void {
  if (spec.prefregex && PRESENT_GROUP.test(expandTags(spec.prefregex.text))) return;
  for (const r of spec.failregex) {
    const expanded = expandTags(r.text);
    if (!ID_GROUP.test(expanded)) {
      const unknown = expanded.match(/<[\w-]+>/)?.[0];
      throw new Fail2tsError(
        "config",
        `failregex ${JSON.stringify(r.text.length > 80 ? `${r.text.slice(0, 77)}...` : r.text)} has no <HOST>, <ADDR>, <IP4>, <IP6>, <DNS> or <F-ID>: it can never name an address` +
          (unknown ? ` (nothing defines ${unknown})` : ""),
        r.where,
      );
    }
  }
}

/** Finishes a spec from a read filter: options, declared options, definitions. */
export function describeSpec(spec: FilterSpec, reader: Fail2banFilterReader): void {
  for (const [k, v] of reader.initOpts) {
    if (!k.startsWith("known/")) spec.options[k] = flat(v);
  }
  if (reader.cfg.hasSection("Init")) {
    for (const k of reader.cfg.options("Init", false)) {
      const v = reader.initOpts.get(`known/${k}`);
      if (v) spec.declaredOptions[k] = flat(v);
    }
  }
  if (reader.cfg.hasSection("Definition")) spec.definitions = reader.cfg.options("Definition", false);
  if (spec.maxlines < 1) spec.maxlines = 1;
}

export interface LoadFilterOptions {
  /** The jail's backend (`systemd` picks logtype=journal). Default "auto". */
  backend?: string;
  /** Where the reference options were written (for messages). */
  refWhere?: string;
  cache?: IniCache;
}

/**
 * Loads a Fail2ban filter file as fail2ban-regex does, with `name[key=value]` options, into a
 * FilterSpec. Conditional groups are rewritten for JavaScript.
 */
export function loadFail2banFilter(
  file: string,
  options: Record<string, string> = {},
  o: LoadFilterOptions = {},
): FilterSpec {
  const reader = new Fail2banFilterReader(file, optionsAt(options, o.refWhere ?? "argument"), o.cache);
  reader.read();
  reader.applyAutoOptions(o.backend ?? "auto");
  reader.getOptions();
  const spec = emptySpec(reader);
  fillSpec(spec, reader.getCombined());
  describeSpec(spec, reader);
  if (spec.failregex.length === 0) throw new Fail2tsError("config", "the filter has no failregex", file);
  checkFailureIds(spec);
  return spec;
}
