/**
 * iptables/ip6tables for hosts without nftables, in two modes:
 *
 * - `iptables` (plain): chain `f2t-<jail>` per family holding one rule per banned address
 *   (`-s ADDR -j REJECT`), ending in `-j RETURN`; INPUT jumps to it for the jail's ports.
 * - `ipset`: sets `f2t-<jail>-v4`/`-v6` (`hash:net` with per-element timeout, so CIDRs and
 *   /banprefix6 networks fit beside addresses) matched by the rules of chain `f2t-<jail>`.
 *
 * Batches go through one `iptables-restore -w --noflush` / `ipset restore -exist` per family, not
 * one process per address. Plain mode reads the chain first (`-S`) so that a present address is
 * not added twice and an absent one is not deleted (a failing `-D` would abort the restore).
 */
import { Fail2tsError } from "../util/errors.ts";
import { JAIL_NAME, parseTarget, type Target, targetString, withPrefix6 } from "./addr.ts";
import { type Exec, run } from "./exec.ts";
import type { Options, Schema } from "./options.ts";
import { BLOCK_SCHEMA, blocking, type Match, renderPorts } from "./ports.ts";
import type { Action, ActionLogger, BanEvent, JailInfo } from "./types.ts";

export const IPTABLES_SCHEMA: Schema = {
  ...BLOCK_SCHEMA,
  chain: "string",
  iptables: "string",
  ip6tables: "string",
};

export const IPSET_SCHEMA: Schema = { ...IPTABLES_SCHEMA, ipset: "string", maxelem: "int" };

/** ipset refuses timeouts above this (about 24.8 days); longer bans are permanent in the set. */
const IPSET_MAX_TIMEOUT = 2_147_483;

type Family = 4 | 6;

/** Plain mode: above this many deletions in one batch the chain is rewritten, not `-D`'d. */
const PLAIN_REWRITE_ABOVE = 64;

export class IptablesAction implements Action {
  readonly name: string;
  private readonly chain: string;
  private readonly parent: string;
  private readonly match: Match;
  private readonly drop: boolean;
  private readonly bin: Record<Family, string>;
  private readonly ipsetBin: string;
  private readonly maxelem: number;
  private readonly prefix6: number | undefined;

  constructor(
    name: string,
    private readonly mode: "plain" | "ipset",
    jail: JailInfo,
    opts: Options,
    private readonly exec: Exec,
    private readonly log: ActionLogger,
    private readonly now: () => number = Date.now,
  ) {
    this.name = name;
    // iptables chain names: 28 chars; ipset names: 31 (and restore uses -t4/-t6 temporaries)
    if (!JAIL_NAME.test(jail.name) || jail.name.length > 24) {
      throw new Fail2tsError(
        "config",
        `jail name ${JSON.stringify(jail.name)}: ${mode === "ipset" ? "ipset" : "iptables"} needs 1-24 letters, digits, _ or -`,
      );
    }
    this.chain = `f2t-${jail.name}`;
    this.parent = opts.str("chain", "INPUT");
    if (!/^[A-Za-z0-9_-]{1,28}$/.test(this.parent)) opts.fail("chain", "not a valid iptables chain name");
    const block = blocking(opts, jail);
    this.match = block.match;
    const slots = this.match.ports.reduce((n, [lo, hi]) => n + (lo === hi ? 1 : 2), 0);
    if (slots > 15) opts.fail("port", "iptables multiport takes at most 15 ports (a range counts 2)");
    this.drop = block.drop;
    this.bin = { 4: opts.str("iptables", "iptables"), 6: opts.str("ip6tables", "ip6tables") };
    this.ipsetBin = opts.str("ipset", "ipset");
    this.maxelem = opts.int("maxelem", 1_048_576);
    const p6 = jail.banprefix6;
    this.prefix6 = p6 !== undefined && p6 < 128 ? p6 : undefined;
  }

  private setName(f: Family, temp = false): string {
    return `${this.chain}-${temp ? "t" : "v"}${f}`;
  }

  private target(f: Family): string {
    if (this.drop) return "-j DROP";
    return `-j REJECT --reject-with ${f === 4 ? "icmp-port-unreachable" : "icmp6-port-unreachable"}`;
  }

  /** The jump rules from the parent chain, as `iptables -S` prints them (without `-A PARENT`). */
  jumpSpecs(): string[] {
    const { protocols, ports } = this.match;
    if (protocols.length === 0) return [`-j ${this.chain}`];
    return protocols.map((p) =>
      ports.length
        ? `-p ${p} -m multiport --dports ${renderPorts(ports, ":", ",")} -j ${this.chain}`
        : `-p ${p} -j ${this.chain}`,
    );
  }

  private async ipt(f: Family, op: string, args: string[]) {
    return run(this.exec, this.name, op, [this.bin[f], "-w", ...args]);
  }

  private async restoreTable(f: Family, op: string, lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    const bin = `${this.bin[f]}-restore`;
    const stdin = `*filter\n${lines.join("\n")}\nCOMMIT\n`;
    await run(this.exec, this.name, op, [bin, "-w", "--noflush"], { stdin, timeoutMs: 120_000 });
  }

  private async ipsetRestore(op: string, lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    await run(this.exec, this.name, op, [this.ipsetBin, "restore", "-exist"], {
      stdin: `${lines.join("\n")}\n`,
      timeoutMs: 120_000,
    });
  }

  private setCreate(f: Family, temp = false): string {
    const family = f === 4 ? "inet" : "inet6";
    return `create ${this.setName(f, temp)} hash:net family ${family} timeout 0 maxelem ${this.maxelem}`;
  }

  /** `-S CHAIN` lines, or undefined when the chain does not exist. */
  private async listChain(f: Family, chain: string): Promise<string[] | undefined> {
    const res = await this.exec([this.bin[f], "-w", "-S", chain]);
    if (res.code !== 0) return undefined;
    return res.stdout.split("\n").filter((l) => l.startsWith("-A "));
  }

  private ipsetRules(f: Family): string[] {
    return [
      `:${this.chain} - [0:0]`,
      `-A ${this.chain} -m set --match-set ${this.setName(f)} src ${this.target(f)}`,
    ];
  }

  /** Makes the parent chain jump exactly with jumpSpecs() (stale jumps from an older port spec go). */
  private async syncJumps(f: Family, wanted: string[]): Promise<void> {
    const lines = (await this.listChain(f, this.parent)) ?? [];
    const prefix = `-A ${this.parent} `;
    const present = lines.filter((l) => l.endsWith(` -j ${this.chain}`)).map((l) => l.slice(prefix.length));
    for (const spec of present) {
      if (!wanted.includes(spec)) await this.ipt(f, "start", ["-D", this.parent, ...spec.split(" ")]);
    }
    for (const spec of wanted) {
      if (!present.includes(spec)) await this.ipt(f, "start", ["-I", this.parent, "1", ...spec.split(" ")]);
    }
  }

  async start(): Promise<void> {
    if (this.mode === "ipset") await this.ipsetRestore("start", [this.setCreate(4), this.setCreate(6)]);
    for (const f of [4, 6] as const) {
      if (this.mode === "ipset") {
        await this.restoreTable(f, "start", this.ipsetRules(f));
      } else if ((await this.listChain(f, this.chain)) === undefined) {
        await this.restoreTable(f, "start", [`:${this.chain} - [0:0]`, `-A ${this.chain} -j RETURN`]);
      }
      await this.syncJumps(f, this.jumpSpecs());
    }
  }

  async check(): Promise<boolean> {
    for (const f of [4, 6] as const) {
      const chain = await this.listChain(f, this.chain);
      if (!chain || chain.length === 0) return false;
      const parent = (await this.listChain(f, this.parent)) ?? [];
      if (!this.jumpSpecs().every((s) => parent.includes(`-A ${this.parent} ${s}`))) return false;
    }
    if (this.mode === "ipset") {
      const res = await this.exec([this.ipsetBin, "list", "-n"]);
      const names = res.stdout.split("\n");
      if (res.code !== 0 || !names.includes(this.setName(4)) || !names.includes(this.setName(6)))
        return false;
    }
    return true;
  }

  private targets(batch: BanEvent[]): { t: Target; ev: BanEvent }[] {
    const out: { t: Target; ev: BanEvent }[] = [];
    for (const ev of batch) {
      const parsed = parseTarget(ev.ip);
      if (!parsed) {
        this.log.error(`${this.name}: ignoring invalid address ${JSON.stringify(ev.ip)}`);
        continue;
      }
      out.push({ t: withPrefix6(parsed, this.prefix6), ev });
    }
    return out;
  }

  /** ipset timeout for a ban: remaining seconds, 0 = permanent, undefined = already over. */
  private timeout(ev: BanEvent): number | undefined {
    if (ev.bantime < 0) return 0;
    const left = Math.ceil(ev.time + ev.bantime - this.now() / 1000);
    if (left <= 0) return undefined;
    return left > IPSET_MAX_TIMEOUT ? 0 : left;
  }

  private ipsetAddLines(items: { t: Target; ev: BanEvent }[], temp = false): string[] {
    const lines: string[] = [];
    for (const { t, ev } of items) {
      const to = this.timeout(ev);
      if (to === undefined) continue;
      lines.push(`add ${this.setName(t.family, temp)} ${targetString(t)} timeout ${to}`);
    }
    return lines;
  }

  private rule(f: Family, source: string): string {
    return `-s ${source} ${this.target(f)}`;
  }

  /** `-s` of each rule of our chain (as iptables prints it: `1.2.3.4/32`) → the full `-A` line. */
  private async plainRules(
    f: Family,
    op: string,
  ): Promise<{ lines: string[]; bySource: Map<string, string[]> }> {
    const lines = await this.listChain(f, this.chain);
    if (lines === undefined) {
      throw new Fail2tsError("action", `${this.name} ${op}: chain ${this.chain} is missing (${this.bin[f]})`);
    }
    const bySource = new Map<string, string[]>();
    for (const l of lines) {
      const m = / -s (\S+) /.exec(l);
      if (!m) continue;
      const list = bySource.get(m[1]!);
      if (list) list.push(l);
      else bySource.set(m[1]!, [l]);
    }
    return { lines, bySource };
  }

  async update(unbanBatch: BanEvent[], banBatch: BanEvent[]): Promise<void> {
    const unbans = this.targets(unbanBatch);
    const bans = this.targets(banBatch);
    if (unbans.length + bans.length === 0) return;
    const op = bans.length && unbans.length ? "update" : bans.length ? "ban" : "unban";
    if (this.mode === "ipset") {
      const lines = unbans.map(({ t }) => `del ${this.setName(t.family)} ${targetString(t)}`);
      await this.ipsetRestore(op, [...lines, ...this.ipsetAddLines(bans)]);
      return;
    }
    for (const f of [4, 6] as const) {
      const u = unbans.filter((x) => x.t.family === f);
      const b = bans.filter(
        (x) => x.t.family === f && (x.ev.bantime < 0 || this.timeout(x.ev) !== undefined),
      );
      if (u.length + b.length === 0) continue;
      const { lines: current, bySource: present } = await this.plainRules(f, op);
      const cidr = (t: Target) => `${t.addr}/${t.prefix}`;
      const drop = new Set<string>();
      for (const { t } of u) {
        for (const l of present.get(cidr(t)) ?? []) drop.add(l);
        present.delete(cidr(t));
      }
      const added: string[] = [];
      for (const { t } of b) {
        if (present.has(cidr(t))) continue;
        present.set(cidr(t), []);
        added.push(this.rule(f, cidr(t)));
      }
      if (drop.size > PLAIN_REWRITE_ABOVE) {
        // each `-D RULE` searches the chain (quadratic for big batches): rewrite it instead
        const lines = [`:${this.chain} - [0:0]`, ...added.map((r) => `-A ${this.chain} ${r}`)];
        for (const l of current) if (!drop.has(l)) lines.push(l);
        await this.restoreTable(f, op, lines);
      } else {
        const lines = [...drop].map((l) => `-D${l.slice(2)}`);
        for (const r of added) lines.push(`-I ${this.chain} 1 ${r}`);
        await this.restoreTable(f, op, lines);
      }
    }
  }

  ban(batch: BanEvent[]): Promise<void> {
    return this.update([], batch);
  }

  unban(batch: BanEvent[]): Promise<void> {
    return this.update(batch, []);
  }

  /** Exactly `batch`: ipset fills temporaries and swaps them in; plain rewrites the chain. */
  async restore(batch: BanEvent[]): Promise<void> {
    const items = this.targets(batch);
    if (this.mode === "ipset") {
      const lines: string[] = [];
      for (const f of [4, 6] as const) {
        lines.push(this.setCreate(f, true), `flush ${this.setName(f, true)}`);
        lines.push(
          ...this.ipsetAddLines(
            items.filter((x) => x.t.family === f),
            true,
          ),
        );
        lines.push(`swap ${this.setName(f, true)} ${this.setName(f)}`, `destroy ${this.setName(f, true)}`);
      }
      await this.ipsetRestore("restore", lines);
      return;
    }
    for (const f of [4, 6] as const) {
      const seen = new Set<string>();
      const lines = [`:${this.chain} - [0:0]`];
      for (const { t, ev } of items) {
        const src = `${t.addr}/${t.prefix}`;
        if (t.family !== f || seen.has(src) || (ev.bantime >= 0 && this.timeout(ev) === undefined)) continue;
        seen.add(src);
        lines.push(`-A ${this.chain} ${this.rule(f, src)}`);
      }
      lines.push(`-A ${this.chain} -j RETURN`);
      await this.restoreTable(f, "restore", lines);
    }
  }

  async flush(): Promise<void> {
    if (this.mode === "ipset") {
      await this.ipsetRestore("flush", [
        this.setCreate(4),
        this.setCreate(6),
        `flush ${this.setName(4)}`,
        `flush ${this.setName(6)}`,
      ]);
      return;
    }
    for (const f of [4, 6] as const) {
      await this.restoreTable(f, "flush", [`:${this.chain} - [0:0]`, `-A ${this.chain} -j RETURN`]);
    }
  }

  async stop(): Promise<void> {
    for (const f of [4, 6] as const) {
      await this.syncJumps(f, []);
      if ((await this.listChain(f, this.chain)) !== undefined) {
        await this.ipt(f, "stop", ["-F", this.chain]);
        await this.ipt(f, "stop", ["-X", this.chain]);
      }
    }
    if (this.mode === "ipset") {
      await this.ipsetRestore("stop", [`destroy ${this.setName(4)}`, `destroy ${this.setName(6)}`]);
    }
  }
}
