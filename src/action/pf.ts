/**
 * PF (OpenBSD, FreeBSD, macOS): a table `f2t-<jail>` and a block rule in the anchor
 * `fail2ts/<jail>`. pf.conf must contain `anchor "fail2ts/*"` for the rules to be evaluated.
 * Batches are `pfctl -T add|delete` with many addresses per argv (both are idempotent in pfctl:
 * adding a present address or deleting an absent one reports 0 changes, exit 0).
 */
import { Fail2tsError } from "../util/errors.ts";
import { JAIL_NAME, parseTarget, targetString, withPrefix6 } from "./addr.ts";
import { type Exec, execError, run } from "./exec.ts";
import type { Options, Schema } from "./options.ts";
import { BLOCK_SCHEMA, blocking, type Match, renderPorts } from "./ports.ts";
import type { Action, ActionLogger, BanEvent, JailInfo } from "./types.ts";

export const PF_SCHEMA: Schema = {
  ...BLOCK_SCHEMA,
  anchor: "string",
  pfctl: "string",
};

/** Addresses per pfctl argv (keeps argv well under ARG_MAX). */
const CHUNK = 2000;

export class PfAction implements Action {
  readonly name: string;
  private readonly pfctl: string;
  private readonly anchor: string;
  private readonly table: string;
  private readonly match: Match;
  private readonly block: string;
  private readonly prefix6: number | undefined;

  constructor(
    name: string,
    jail: JailInfo,
    opts: Options,
    private readonly exec: Exec,
    private readonly log: ActionLogger,
  ) {
    this.name = name;
    if (!JAIL_NAME.test(jail.name) || jail.name.length > 27) {
      throw new Fail2tsError(
        "config",
        `jail name ${JSON.stringify(jail.name)}: pf needs 1-27 letters, digits, _ or -`,
      );
    }
    this.pfctl = opts.str("pfctl", "pfctl");
    const base = opts.str("anchor", "fail2ts");
    if (!/^[A-Za-z0-9_-]+$/.test(base)) opts.fail("anchor", "use letters, digits, _ and -");
    this.anchor = `${base}/${jail.name}`;
    this.table = `f2t-${jail.name}`;
    const block = blocking(opts, jail);
    this.match = block.match;
    this.block = block.drop ? "block drop" : "block return";
    const p6 = jail.banprefix6;
    this.prefix6 = p6 !== undefined && p6 < 128 ? p6 : undefined;
  }

  /** The anchor's rules as loaded with `pfctl -a ANCHOR -f -`. */
  rules(): string {
    const { protocols, ports } = this.match;
    const lines = [`table <${this.table}> persist counters`];
    const to = ports.length ? ` to any port { ${renderPorts(ports, ":", ", ")} }` : "";
    if (protocols.length === 0) lines.push(`${this.block} quick from <${this.table}>`);
    else lines.push(`${this.block} quick proto { ${protocols.join(", ")} } from <${this.table}>${to}`);
    return `${lines.join("\n")}\n`;
  }

  private table_(op: string, args: string[]) {
    return run(this.exec, this.name, op, [this.pfctl, "-a", this.anchor, "-t", this.table, "-T", ...args]);
  }

  async start(): Promise<void> {
    await run(this.exec, this.name, "start", [this.pfctl, "-a", this.anchor, "-f", "-"], {
      stdin: this.rules(),
    });
  }

  async check(): Promise<boolean> {
    const res = await this.exec([this.pfctl, "-a", this.anchor, "-t", this.table, "-T", "show"]);
    return res.code === 0;
  }

  private addresses(batch: BanEvent[]): string[] {
    const out = new Set<string>();
    for (const ev of batch) {
      const t = parseTarget(ev.ip);
      if (!t) {
        this.log.error(`${this.name}: ignoring invalid address ${JSON.stringify(ev.ip)}`);
        continue;
      }
      out.add(targetString(withPrefix6(t, this.prefix6)));
    }
    return [...out];
  }

  private async each(op: string, verb: string, addrs: string[]): Promise<void> {
    for (let i = 0; i < addrs.length; i += CHUNK) await this.table_(op, [verb, ...addrs.slice(i, i + CHUNK)]);
  }

  async ban(batch: BanEvent[]): Promise<void> {
    await this.each("ban", "add", this.addresses(batch));
  }

  async unban(batch: BanEvent[]): Promise<void> {
    await this.each("unban", "delete", this.addresses(batch));
  }

  /** `-T replace` makes the table exactly the batch in one call (chunks beyond the first are added). */
  async restore(batch: BanEvent[]): Promise<void> {
    const addrs = this.addresses(batch);
    await this.table_("restore", ["replace", ...addrs.slice(0, CHUNK)]);
    await this.each("restore", "add", addrs.slice(CHUNK));
  }

  /** Runs a table command where a missing table/anchor means "nothing to do" (idempotent). */
  private async tolerant(op: string, args: string[]): Promise<void> {
    const argv = [this.pfctl, "-a", this.anchor, ...args];
    const res = await this.exec(argv);
    if (res.code !== 0 && !/does not exist|no such/i.test(res.stderr))
      throw execError(this.name, op, argv, res);
  }

  async flush(): Promise<void> {
    await this.tolerant("flush", ["-t", this.table, "-T", "flush"]);
  }

  async stop(): Promise<void> {
    await this.tolerant("stop", ["-t", this.table, "-T", "kill"]);
    await this.tolerant("stop", ["-F", "rules"]);
  }
}
