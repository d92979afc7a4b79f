/**
 * Fail2ban actions (action.d/NAME.conf, `name[key=value]` in a jail's `action`) → fail2ts actions.
 *
 * The common ones read from unmodified files (no .local, no NAME.d/) become fail2ts's own batched
 * actions: iptables* → iptables, iptables-ipset* → ipset, nftables* → nftables, hostsdeny →
 * hostsdeny, mail* and sendmail* → mail. Any other becomes a `command` action run through `sh -c`:
 * Fail2ban's static tags are substituted as Fail2ban does (with `?family=inet6` variants chosen per
 * address by a `case`), and every value that comes from a ban (<ip>, <matches>, <failures>...) is
 * single-quoted where it lands. Python actions (smtp.py) cannot run: a warning, the jail goes on.
 */
import { hostname } from "node:os";
import { basename, dirname, isAbsolute, join } from "node:path";
import { Fail2tsError } from "../util/errors.ts";
import { DefinitionInitReader, type OptType, optionsAt } from "./definit.ts";
import { asBool, type IniCache, type Options } from "./ini.ts";
import { protectTags } from "./shell.ts";
import { substituteRecursiveTags } from "./tags.ts";
import { flat, type Text } from "./text.ts";

export const ACTION_OPTS: Record<string, OptType> = {
  actionstart: "string",
  actionstart_on_demand: "bool",
  actionstop: "string",
  actionflush: "string",
  actionreload: "string",
  actioncheck: "string",
  actionrepair: "string",
  actionrepair_on_unban: "bool",
  actionban: "string",
  actionprolong: "string",
  actionreban: "string",
  actionunban: "string",
  norestored: "bool",
};

/** Values Fail2ban's getCombined leaves for ban time. */
const ESCAPED_TAGS = ["matches", "ipmatches", "ipjailmatches"];

/** Fail2ban's ban-time tags → fail2ts command tags (null: fail2ts has no such value). */
const DYNAMIC: Record<string, string | null> = {
  ip: "ip",
  fid: "ip",
  failures: "failures",
  ipfailures: "failures",
  ipjailfailures: "failures",
  time: "time",
  bantime: "bantime",
  bancount: "count",
  matches: "matches",
  ipmatches: "matches",
  ipjailmatches: "matches",
  "ip-rev": null,
  "ip-host": null,
  "raw-ticket": null,
  "jail.banned": null,
  "jail.banned_total": null,
  "jail.found": null,
  "jail.found_total": null,
};

const VALUE_TAGS = new Set(["ip", "failures", "time", "bantime", "count", "matches"]);

/** A Fail2ban action as fail2ts runs it. */
export interface F2bAction {
  /** Fail2ban's name for it in the jail (actname): `iptables-multiport`, `sendmail-whois-2`. */
  actname: string;
  /** The action.d file it came from. */
  file: string;
  /** What it becomes: an [actions.X] table (type + options). */
  type: string;
  options: Record<string, unknown>;
  /** Where fail2ts's action does not do exactly what Fail2ban's did. */
  notes: string[];
}

export interface ActionContext {
  /** The Fail2ban configuration directory. */
  dir: string;
  jail: string;
  /** The jail's options (interpolation variables of [Definition]). */
  jailOpts: Options;
  cache: IniCache;
  /** Where the action entry was written. */
  where: string;
  /**
   * Decides about a native mapping (one fail2ts firewall action per type and jail): keep it, or
   * it was merged into an earlier one of the jail (null is returned), or use the command instead.
   */
  native?: (a: F2bAction) => "keep" | "merged" | "command";
}

function hostnames(): { fq: string; sh: string } {
  const fq = hostname();
  return { fq, sh: fq.split(".")[0]! };
}

/** Fail2ban's replaceTag: properties substituted into `query` (per family), unknown tags kept. */
function replaceTag(query: string, props: Map<string, Text>, conditional: string): string {
  if (!query.includes("<")) return query;
  const sub = substituteRecursiveTags(props, { conditional, ignore: ESCAPED_TAGS });
  const h = hostnames();
  const extra: Record<string, string> = { br: "\n", sp: " ", "fq-hostname": h.fq, "sh-hostname": h.sh };
  let q = query;
  for (let n = 0; n < 26; n++) {
    const v = q.replace(/<([^ <>]+)>/g, (whole, tag: string) => {
      let val = conditional ? sub.get(`${tag}?${conditional}`) : undefined;
      if (val === undefined) val = sub.get(tag);
      if (val === undefined) return extra[tag] ?? whole;
      return flat(val);
    });
    if (v === q || !v.includes("<")) return v;
    q = v;
  }
  throw new Fail2tsError(
    "config",
    `tags refer to each other without end in ${JSON.stringify(query.slice(0, 80))}`,
  );
}

/**
 * Reads one action entry of a jail (`iptables-multiport[port="ssh", protocol=tcp]`). Returns
 * null with a warning for what cannot run (a Python action, an action whose tags fail2ts has no
 * value for).
 */
export function readFail2banAction(
  name: string,
  refOpts: Record<string, string>,
  ctx: ActionContext,
  warn: (msg: string) => void,
): F2bAction | null {
  if (name.endsWith(".py")) {
    warn(
      `${join(ctx.dir, "action.d", name)}: a Python action cannot run in fail2ts; jail ${ctx.jail} runs without it`,
    );
    return null;
  }
  const init = { ...refOpts };
  let n = init.name;
  if (n === undefined) init.name = n = ctx.jail;
  let actname = init.actname;
  if (actname === undefined) {
    actname = name;
    if (n !== ctx.jail) actname += n.startsWith(ctx.jail) ? n.slice(ctx.jail.length) : `-${n}`;
    init.actname = actname;
  }
  const reader = new DefinitionInitReader(ACTION_OPTS, optionsAt(init, ctx.where), ctx.cache);
  const base = isAbsolute(name) ? name : join(ctx.dir, "action.d", name);
  const files = reader.readStandard(dirname(base), basename(base));
  if (files.length === 0) throw new Fail2tsError("config", `no action file action.d/${name}.conf`, ctx.where);
  reader.getOptions(ctx.jailOpts);
  const combined = reader.getCombined([...ESCAPED_TAGS, "timeout", "bantime"]);
  const props = new Map<string, Text>();
  for (const [k, v] of combined)
    if (Object.hasOwn(ACTION_OPTS, k) && !k.startsWith("known/")) props.set(k, v);
  for (const [k, v] of reader.initOpts)
    if (!Object.hasOwn(ACTION_OPTS, k) && !k.startsWith("known/")) props.set(k, v);
  const file = `${base}.conf`;
  const stock = files.every((f) => f.endsWith(".conf") && !/\.d\/[^/]+$/.test(f.slice(dirname(base).length)));
  if (stock) {
    const def = (k: string): string | undefined => {
      const v = combined.get(k) ?? reader.getCombOption(k) ?? undefined;
      return v === undefined ? undefined : replaceTag(flat(v), props, "");
    };
    const native = nativeAction(name, def, actname, file);
    const how = native ? (ctx.native?.(native) ?? "keep") : "command";
    if (how === "keep") return native;
    if (how === "merged") return null;
  }
  return commandAction(props, actname, file, ctx, warn);
}

const propStr = (props: Map<string, Text>, k: string, cond = ""): string | undefined => {
  const v = props.get(k);
  return v === undefined ? undefined : replaceTag(flat(v), props, cond);
};

/** The common actions, mapped to fail2ts's own. */
function nativeAction(
  base: string,
  def: (k: string) => string | undefined,
  actname: string,
  file: string,
): F2bAction | null {
  const notes: string[] = [];
  const get = (k: string) => def(k)?.trim();
  const common = (): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    const port = get("port");
    const protocol = get("protocol");
    if (port) o.port = port;
    if (protocol) o.protocol = protocol;
    return o;
  };
  const out = (type: string, options: Record<string, unknown>): F2bAction => ({
    actname,
    file,
    type,
    options,
    notes,
  });
  let m: RegExpExecArray | null;
  if ((m = /^iptables(?:-(multiport|allports|new|multiport-log))?$/.exec(base))) {
    const o = common();
    const type = get("type") ?? "oneport";
    if (m[1] === "allports" || type === "allports") o.allports = true;
    else if (type !== "oneport" && type !== "multiport") return null;
    const chain = get("chain");
    if (chain && chain !== "INPUT") o.chain = chain;
    if (!blocktypeIptables(get("blocktype"), o)) return null;
    if (m[1] === "new" || (get("pre-rule") ?? "") !== "")
      notes.push("the rule's extra match (-m state --state NEW) is not kept");
    if (m[1] === "multiport-log") notes.push("banned packets are not logged (no LOG target)");
    return out("iptables", o);
  }
  if ((m = /^iptables-ipset(?:-proto4|-proto6(-allports)?)?$/.exec(base))) {
    const o = common();
    if (m[1] || get("type") === "allports") o.allports = true;
    const chain = get("chain");
    if (chain && chain !== "INPUT") o.chain = chain;
    if (!blocktypeIptables(get("blocktype"), o)) return null;
    return out("ipset", o);
  }
  if ((m = /^nftables(?:-(multiport|allports))?$/.exec(base))) {
    const o = common();
    const type = get("type") ?? "multiport";
    if (m[1] === "allports" || type === "allports") o.allports = true;
    else if (type !== "multiport") return null;
    const bt = get("blocktype");
    if (bt === "drop") o.blocktype = "drop";
    else if (bt && bt !== "reject") return null;
    const hook = get("chain_hook");
    if (hook === "forward") o.hook = "forward";
    else if (hook && hook !== "input") return null;
    const prio = get("chain_priority");
    if (prio && /^-?\d+$/.test(prio) && prio !== "-1") o.priority = Number(prio);
    const table = get("table");
    if (table && table !== "f2b-table") o.table = table;
    return out("nftables", o);
  }
  if (base === "hostsdeny") {
    const o: Record<string, unknown> = {};
    const f = get("file");
    if (f && f !== "/etc/hosts.deny") o.path = f;
    const d = get("daemon_list");
    if (d && d !== "ALL") o.daemons = d;
    return out("hostsdeny", o);
  }
  if (
    (m =
      /^(sendmail|mail)(?:-(whois|whois-lines|whois-matches|whois-ipmatches|whois-ipjailmatches|geoip-lines|buffered))?$/.exec(
        base,
      ))
  ) {
    if (m[1] === "mail" && m[2] === "whois-matches") return null;
    const dest = get("dest") ?? "root";
    let sender = get("sender") ?? "fail2ban";
    if (!sender.includes("@")) sender = `${sender}@${hostnames().fq}`;
    const to = dest
      .split(/[\s,]+/)
      .filter(Boolean)
      .map((a) => (a.includes("@") ? a : `${a}@localhost`));
    notes.push("sent by fail2ts's mail action: no mail when the jail starts or stops");
    if (m[2]?.includes("whois")) notes.push("no whois report in the mail");
    if (m[2] === "geoip-lines") notes.push("no GeoIP lookup in the mail");
    if (m[2] === "buffered") notes.push("one mail per ban, not a buffer of several");
    if (m[1] === "mail") notes.push("sent with sendmail instead of the mail command");
    return out("mail", { transport: "sendmail", to, from: sender, restored: false });
  }
  return null;
}

/** DROP or REJECT as fail2ts does them; false for anything else (RETURN, tcp-reset...). */
function blocktypeIptables(bt: string | undefined, o: Record<string, unknown>): boolean {
  if (bt === undefined) return true;
  if (/^DROP$/i.test(bt)) o.blocktype = "drop";
  else if (!/^REJECT(?: --reject-with icmp6?-port-unreachable)?$/i.test(bt)) return false;
  return true;
}

/** Static substitution of one operation for one family, then the ban values made safe. */
function operation(
  props: Map<string, Text>,
  op: string,
  family: string,
  missing: Set<string>,
): string | null {
  const raw = props.get(op);
  if (raw === undefined) return null;
  let cmd = replaceTag(flat(raw), props, family ? `family=${family}` : "");
  if (family) cmd = cmd.replaceAll("<family>", family);
  // ban-time values, with fail2ts's names
  cmd = cmd.replace(/<([^ <>]+)>/g, (whole, tag: string) => {
    if (tag === "restored") return "0";
    if (tag.startsWith("F-")) {
      missing.add(tag);
      return whole;
    }
    if (!Object.hasOwn(DYNAMIC, tag)) return whole;
    const to = DYNAMIC[tag];
    if (to === null || to === undefined) {
      missing.add(tag);
      return whole;
    }
    return `<${to}>`;
  });
  return cmd.trim() === "" ? null : cmd;
}

function commandAction(
  props: Map<string, Text>,
  actname: string,
  file: string,
  ctx: ActionContext,
  warn: (msg: string) => void,
): F2bAction | null {
  const notes: string[] = [];
  const hasCond = [...props.keys()].some((k) => /^\w+\?family=/.test(k));
  const missing = new Set<string>();
  const families = (op: string): string[] => {
    const v = props.get(op);
    return hasCond || (v !== undefined && flat(v).includes("<family>")) ? ["inet4", "inet6"] : [""];
  };
  const opts: Record<string, unknown> = { shell: true, concurrency: 1 };
  const ops: Array<[string, string, boolean]> = [
    ["actionstart", "start", false],
    ["actionstop", "stop", false],
    ["actioncheck", "check", false],
    ["actionflush", "flush", false],
    ["actionban", "ban", true],
    ["actionunban", "unban", true],
  ];
  for (const [op, key, perIp] of ops) {
    const fams = families(op);
    const variants = fams.map((f) => operation(props, op, f, missing));
    let script: string | null;
    const [v4, v6] = variants;
    if (variants.length === 1 || v4 === v6) script = v4 ?? null;
    else if (perIp) script = `case <ip> in\n*:*)\n${v6 ?? ":"}\n;;\n*)\n${v4 ?? ":"}\n;;\nesac`;
    else script = v4 && v6 ? `{\n${v4}\n} && {\n${v6}\n}` : (v4 ?? v6 ?? null);
    if (script === null) continue;
    const safe = protectTags(script, VALUE_TAGS);
    if (safe === null) {
      warn(
        `${file}: ${op} puts a ban value inside a quoted here-document; jail ${ctx.jail} runs without action ${actname}`,
      );
      return null;
    }
    opts[key] = safe;
  }
  if (missing.size > 0) {
    warn(
      `${file}: fail2ts has no value for ${[...missing].map((t) => `<${t}>`).join(", ")}; jail ${ctx.jail} runs without action ${actname}`,
    );
    return null;
  }
  if (opts.ban === undefined && opts.unban === undefined) {
    warn(`${file}: the action does nothing on ban or unban; jail ${ctx.jail} runs without action ${actname}`);
    return null;
  }
  const timeout = propStr(props, "timeout")?.trim();
  if (timeout && /^\d+$/.test(timeout)) opts.timeout = Number(timeout);
  const norestored = props.get("norestored");
  if (norestored && asBool(flat(norestored))) opts.restored = false;
  if (props.has("actionprolong") || props.has("actionreban"))
    notes.push("actionprolong/actionreban are not used");
  if (hasCond) notes.push("the inet4 and inet6 variants of start/stop run together at start");
  const bancount = [opts.ban, opts.unban].some((s) => typeof s === "string" && s.includes("<count>"));
  if (bancount) notes.push("<bancount> is fail2ts's <count> (earlier bans, 0 for the first)");
  return { actname, file, type: "command", options: opts, notes };
}
