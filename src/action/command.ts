/**
 * User commands as argv templates:
 *
 *   [actions.notify]
 *   type = "command"
 *   ban   = ["/usr/local/bin/blocklist", "add", "<ip>", "--jail=<jail>"]
 *   unban = ["/usr/local/bin/blocklist", "del", "<ip>"]
 *
 * Tags (<ip> <jail> <failures> <time> <isotime> <bantime> <matches> <count>) are substituted inside
 * each argument and the argv is executed directly: a hostile value (`$(reboot)`, `;`, quotes, a
 * newline, `-rf`) is one literal argument. The values are also in the environment (F2T_IP,
 * F2T_JAIL, F2T_MATCHES, ...).
 *
 * With `shell = true` each template is one string run as `/bin/sh -c`. The values are NOT pasted
 * into the script (not even single-quoted: inside the user's own double quotes or a here-document
 * a quoted `'$(reboot)'` would still run); each tag becomes a quoted reference to its environment
 * variable (template.ts shellScript), so the shell never parses a value.
 *
 * One process per event (the commands are per address), at most `concurrency` at a time.
 */
import { type Exec, execError } from "./exec.ts";
import { Delivered, eachLimited, eventKey, type Kind } from "./notify.ts";
import type { Options, Schema } from "./options.ts";
import { envOf, eventValues, shellScript, substitute, tagsOf, type Values } from "./template.ts";
import type { Action, ActionLogger, BanEvent, JailInfo } from "./types.ts";

const OPS = ["start", "stop", "ban", "unban", "flush", "check"] as const;
type Op = (typeof OPS)[number];

export const COMMAND_SCHEMA: Schema = {
  start: "string|string[]",
  stop: "string|string[]",
  ban: "string|string[]",
  unban: "string|string[]",
  flush: "string|string[]",
  check: "string|string[]",
  shell: "boolean",
  timeout: "duration",
  concurrency: "int",
  restored: "boolean",
};

const EVENT_TAGS = new Set(["ip", "jail", "failures", "time", "isotime", "bantime", "matches", "count"]);
const JAIL_TAGS = new Set(["jail"]);

/** Type-level checks done, the command-specific ones: the form per `shell`, known tags. */
export function checkCommandOptions(o: Record<string, unknown>): string[] {
  const errors: string[] = [];
  const shell = o.shell === true;
  if (o.ban === undefined && o.unban === undefined)
    errors.push("ban: a command action needs ban and/or unban");
  for (const op of OPS) {
    const v = o[op];
    if (v === undefined) continue;
    if (shell && typeof v !== "string") errors.push(`${op}: with shell = true, a single command string`);
    if (!shell && (!Array.isArray(v) || v.length === 0)) {
      errors.push(
        `${op}: an argv array such as ["/usr/local/bin/x", "<ip>"] (or set shell = true for a string)`,
      );
    }
    const known = op === "ban" || op === "unban" ? EVENT_TAGS : JAIL_TAGS;
    const parts = typeof v === "string" ? [v] : Array.isArray(v) ? (v as string[]) : [];
    for (const part of parts) {
      if (typeof part !== "string") continue;
      for (const tag of tagsOf(part)) if (!known.has(tag)) errors.push(`${op}: unknown tag <${tag}> here`);
    }
  }
  return errors;
}

export class CommandAction implements Action {
  readonly name: string;
  private readonly templates: Partial<Record<Op, string[]>>;
  private readonly shell: boolean;
  private readonly timeoutMs: number;
  private readonly concurrency: number;
  private readonly restored: boolean;
  private readonly delivered = new Delivered();

  constructor(
    name: string,
    private readonly jail: JailInfo,
    opts: Options,
    private readonly exec: Exec,
    private readonly log: ActionLogger,
  ) {
    this.name = name;
    this.shell = opts.bool("shell", false);
    this.templates = {};
    for (const op of OPS) {
      const v = opts.list(op);
      if (v) this.templates[op] = v;
    }
    this.timeoutMs = opts.ms("timeout", 60_000);
    this.concurrency = Math.max(1, opts.int("concurrency", 8));
    this.restored = opts.bool("restored", true);
  }

  /** The argv for a template and values: direct, or `/bin/sh -c` with tags as variable references. */
  argv(template: string[], values: Values): string[] {
    if (this.shell) return ["/bin/sh", "-c", shellScript(template.join(" "), EVENT_TAGS)];
    return template.map((part) => substitute(part, values).replaceAll("\0", ""));
  }

  private async runOp(op: Op, values: Values): Promise<number | undefined> {
    const template = this.templates[op];
    if (!template) return undefined;
    const argv = this.argv(template, values);
    const res = await this.exec(argv, { timeoutMs: this.timeoutMs, env: envOf(values) });
    if (op === "check") return res.code;
    if (res.code !== 0) throw execError(this.name, op, this.shell ? ["/bin/sh"] : argv, res);
    if (res.stderr.trim()) this.log.debug(`${this.name} ${op}: ${res.stderr.trim()}`);
    return res.code;
  }

  private jailValues(): Values {
    return { jail: this.jail.name };
  }

  async start(): Promise<void> {
    await this.runOp("start", this.jailValues());
  }

  async check(): Promise<boolean> {
    const code = await this.runOp("check", this.jailValues());
    return code === undefined || code === 0;
  }

  async flush(): Promise<void> {
    await this.runOp("flush", this.jailValues());
  }

  async stop(): Promise<void> {
    await this.runOp("stop", this.jailValues());
  }

  private async each(kind: Kind, batch: BanEvent[]): Promise<void> {
    if (!this.templates[kind]) return;
    const todo = batch.filter(
      (ev) => (this.restored || !ev.restored) && !this.delivered.has(eventKey(kind, ev)),
    );
    await eachLimited(todo, this.concurrency, async (ev) => {
      await this.runOp(kind, eventValues(ev));
      this.delivered.add(eventKey(kind, ev));
    });
    this.delivered.clear();
  }

  ban(batch: BanEvent[]): Promise<void> {
    return this.each("ban", batch);
  }

  unban(batch: BanEvent[]): Promise<void> {
    return this.each("unban", batch);
  }
}
