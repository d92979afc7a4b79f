/**
 * A jail's "never ban" rules: ignoreip (IPs and CIDRs compiled once; DNS names resolved at load;
 * `file:` lists re-read when they change), ignoreself (this host's addresses), ignorecommand
 * (argv, `<ip>` substituted as a whole argument, exit 0 = ignore; asked once per address a while).
 */

import type * as Dns from "node:dns/promises";
import { readFileSync, statSync } from "node:fs";
import { networkInterfaces } from "node:os";
import type { JailConfig } from "../config/schema.ts";
import { type CidrMatcher, cidrMatcher, isDnsName, parseCidr } from "../util/ip.ts";
import type { Logger } from "./log.ts";

interface FileList {
  path: string;
  mtime: number;
  checked: number;
  matcher: CidrMatcher;
}

const FILE_CHECK_MS = 5000;
const COMMAND_CACHE_S = 300;
const COMMAND_TIMEOUT_MS = 10000;

/** Resolves DNS names to their addresses (all of them); names that fail resolve to nothing. */
export async function resolveNames(names: string[], log: Logger): Promise<string[]> {
  const out: string[] = [];
  await Promise.all(
    names.map(async (n) => {
      try {
        const r = await (require("node:dns/promises") as typeof Dns).lookup(n, { all: true });
        for (const a of r) out.push(a.address);
      } catch (e) {
        log.warn(`ignoreip: cannot resolve ${n}: ${(e as Error).message}`);
      }
    }),
  );
  return out;
}

let self: { at: number; list: string[] } | null = null;

/** The addresses of this host's interfaces (asked once a minute at most: jails share it). */
export function selfAddresses(): string[] {
  const now = Date.now();
  if (self && now - self.at < 60000) return self.list;
  const out = ["127.0.0.0/8", "::1"];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) out.push(a.address.replace(/%.*$/, ""));
  }
  self = { at: now, list: out };
  return out;
}

export class IgnoreRules {
  private readonly fixed: CidrMatcher;
  private readonly files: FileList[];
  private readonly cmdCache = new Map<string, { until: number; ignore: boolean }>();

  private constructor(
    entries: string[],
    files: string[],
    private readonly command: string[],
    private readonly log: Logger,
  ) {
    this.fixed = cidrMatcher(entries);
    this.files = files.map((path) => ({ path, mtime: -1, checked: 0, matcher: cidrMatcher([]) }));
    for (const f of this.files) this.reload(f);
  }

  /** Builds the rules of a jail (resolves its DNS names). */
  static async build(j: JailConfig, log: Logger): Promise<IgnoreRules> {
    const entries: string[] = [];
    const names: string[] = [];
    const files: string[] = [];
    for (const e of j.ignoreip) {
      if (e.startsWith("file:")) files.push(e.slice(5));
      else if (parseCidr(e)) entries.push(e);
      else names.push(e);
    }
    if (names.length > 0) entries.push(...(await resolveNames(names, log)));
    if (j.ignoreself) entries.push(...selfAddresses());
    return new IgnoreRules(entries, files, j.ignorecommand, log);
  }

  /** ignoreip / ignoreself / file lists (synchronous: called for every failure). */
  has(ip: string): boolean {
    if (this.fixed.has(ip)) return true;
    if (this.files.length === 0) return false;
    const now = Date.now();
    for (const f of this.files) {
      if (now - f.checked > FILE_CHECK_MS) this.reload(f);
      if (f.matcher.has(ip)) return true;
    }
    return false;
  }

  get hasCommand(): boolean {
    return this.command.length > 0;
  }

  /** Asks ignorecommand about `ip` (cached a few minutes); false when there is none. */
  async commandSays(ip: string): Promise<boolean> {
    if (this.command.length === 0) return false;
    const now = Date.now() / 1000;
    const c = this.cmdCache.get(ip);
    if (c && c.until > now) return c.ignore;
    const argv = this.command.map((a) => a.replaceAll("<ip>", ip));
    let ignore = false;
    try {
      const p = Bun.spawn(argv, {
        stdin: "ignore",
        stdout: "ignore",
        stderr: "pipe",
        timeout: COMMAND_TIMEOUT_MS,
      });
      const code = await p.exited;
      ignore = code === 0;
      if (code !== 0 && code !== 1) {
        const err = (await new Response(p.stderr).text()).trim();
        this.log.warn(
          `ignorecommand ${argv[0]} exited ${code} for ${ip}${err ? `: ${err.split("\n")[0]}` : ""}`,
        );
      }
    } catch (e) {
      this.log.warn(`ignorecommand ${argv[0]}: ${(e as Error).message}`);
    }
    if (this.cmdCache.size > 10000) this.cmdCache.clear();
    this.cmdCache.set(ip, { until: now + COMMAND_CACHE_S, ignore });
    return ignore;
  }

  private reload(f: FileList): void {
    f.checked = Date.now();
    let mtime: number;
    try {
      mtime = statSync(f.path).mtimeMs;
    } catch {
      if (f.mtime !== -1) this.log.warn(`ignoreip: ${f.path} is gone; its addresses are no longer ignored`);
      f.mtime = -1;
      f.matcher = cidrMatcher([]);
      return;
    }
    if (mtime === f.mtime) return;
    f.mtime = mtime;
    const entries: string[] = [];
    let lineNo = 0;
    for (const raw of readFileSync(f.path, "utf8").split("\n")) {
      lineNo++;
      const line = raw.replace(/#.*/, "").trim();
      if (!line) continue;
      for (const e of line.split(/[\s,]+/)) {
        if (parseCidr(e)) entries.push(e);
        else if (isDnsName(e))
          this.log.warn(`${f.path}:${lineNo}: DNS names in ignoreip files are not resolved: ${e}`);
        else this.log.warn(`${f.path}:${lineNo}: not an IP address or CIDR: ${e}`);
      }
    }
    f.matcher = cidrMatcher(entries);
    this.log.info(`ignoreip: ${f.path}: ${entries.length} entries`);
  }
}
