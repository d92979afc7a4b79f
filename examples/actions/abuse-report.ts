/**
 * fail2ts script action: mail an abuse report for each banned address to the abuse contact of its
 * network, found through RDAP (the registries' JSON successor of whois) over HTTP.
 *
 *   [actions.abuse]
 *   type = "script"
 *   path = "/etc/fail2ts/actions/abuse-report.ts"
 *   timeout = "2m"
 *   options = { from = "abuse-reports@example.org", cc = ["security@example.org"] }
 *
 * Options:
 *   from            sender address (required); replies from the network's abuse desk come here
 *   cc              copies, e.g. your own security team
 *   to_override     send every report here instead of the abuse contact (trying it out)
 *   rdap_url        RDAP base for IP queries (default "https://rdap.org/ip/": it redirects to
 *                   the right registry)
 *   rdap_timeout    per lookup (default "10s")
 *   repeat_after    no second report for the same address within this (default "24h")
 *   max_lines       log lines quoted per report (default 50)
 *   organization    who you are, in the signature (default: the host name)
 *   transport       "sendmail" (default) or "smtp"
 *   sendmail        the sendmail program (default /usr/sbin/sendmail), run without a shell
 *   smtp_host, smtp_port (25), smtp_starttls ("opportunistic" | "require" | "never"),
 *   smtp_user, smtp_password or smtp_password_file, helo (default: the host name)
 *
 * What it refuses to do: report re-applied bans (restarts), report an address twice within
 * repeat_after, guess a contact (no abuse entity in RDAP: logged and skipped), put anything from a
 * log line or from RDAP into a mail header unchecked. The log lines are quoted as escaped text
 * (control, bidi and other invisible characters shown as \uXXXX) in a base64-encoded UTF-8 body.
 */
import { readFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { hostname } from "node:os";
import { connect as tlsConnect } from "node:tls";
import type { ActionContext, BanEvent } from "./fail2ts.d.ts";

interface Options {
  from: string;
  cc?: string | string[];
  to_override?: string;
  rdap_url?: string;
  rdap_timeout?: string | number;
  repeat_after?: string | number;
  max_lines?: number;
  organization?: string;
  transport?: "sendmail" | "smtp";
  sendmail?: string;
  smtp_host?: string;
  smtp_port?: number;
  smtp_starttls?: "opportunistic" | "require" | "never";
  smtp_user?: string;
  smtp_password?: string;
  smtp_password_file?: string;
  helo?: string;
}

interface State {
  /** ip → when it was reported (epoch ms). */
  reported?: Map<string, number>;
}

type Ctx = ActionContext<Options, State>;

/** A plain address: nothing a header or an SMTP command could be bent with. */
const EMAIL =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$/;

function ms(v: string | number | undefined, dflt: number): number {
  if (typeof v === "number") return v * 1000;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec((v ?? "").trim());
  if (!m) return dflt;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? "s"]!;
}

// ---- RDAP ------------------------------------------------------------------------------------------

interface RdapEntity {
  roles?: string[];
  vcardArray?: [string, [string, Record<string, unknown>, string, unknown][]];
  entities?: RdapEntity[];
}

interface RdapNetwork {
  handle?: string;
  name?: string;
  startAddress?: string;
  endAddress?: string;
  entities?: RdapEntity[];
}

function emailsOf(e: RdapEntity): string[] {
  const props = e.vcardArray?.[1] ?? [];
  return props.filter((p) => p[0] === "email" && typeof p[3] === "string").map((p) => String(p[3]).trim());
}

/** The abuse mailboxes of an RDAP network object: entities with the "abuse" role, at any depth. */
export function abuseContacts(net: RdapNetwork): string[] {
  const found: string[] = [];
  const walk = (list: RdapEntity[] | undefined, depth: number) => {
    if (!list || depth > 4) return;
    for (const e of list) {
      if (e.roles?.includes("abuse")) found.push(...emailsOf(e));
      walk(e.entities, depth + 1);
    }
  };
  walk(net.entities, 0);
  return [...new Set(found.map((a) => a.toLowerCase()))].filter((a) => EMAIL.test(a));
}

/** The RDAP network of an address, or null when the registry has none (404). */
export async function rdapLookup(base: string, ip: string, signal: AbortSignal): Promise<RdapNetwork | null> {
  const url = `${base.replace(/\/?$/, "/")}${ip}`;
  const res = await fetch(url, { headers: { accept: "application/rdap+json, application/json" }, signal });
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`RDAP ${url}: HTTP ${res.status}`);
  const json = (await res.json()) as RdapNetwork;
  if (!json || typeof json !== "object") throw new Error(`RDAP ${url}: not a JSON object`);
  return json;
}

// ---- the report ------------------------------------------------------------------------------------

/** One log line as inert text: control, bidi and zero-width characters shown as \uXXXX. */
export function escapeLine(line: string): string {
  return line.replace(
    /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

export function reportText(ev: BanEvent, net: RdapNetwork | null, o: Options, host: string): string {
  const lines = ev.matches.slice(-(o.max_lines ?? 50)).map((l) => `  ${escapeLine(l)}`);
  const range = net?.startAddress && net.endAddress ? `${net.startAddress} - ${net.endAddress}` : "";
  const network = [net?.name, net?.handle, range].filter(Boolean).join(", ");
  return `Hello,

the address ${ev.ip}${network ? ` (your network ${network})` : ""} attacked ${host}:
${ev.failures} failed attempts in the service "${ev.jail}", until ${new Date(ev.time * 1000).toISOString()}.
It is blocked here now. Please look into it: it is often a compromised machine.

The log lines (times in the server's zone; characters that could hide text are written as \\uXXXX):

${lines.join("\n")}

This report was sent automatically by fail2ts. Replies reach a person at ${o.from}.

-- 
${o.organization ?? host}
`;
}

function b64lines(text: string): string {
  return (
    Buffer.from(text, "utf8")
      .toString("base64")
      .match(/.{1,76}/g) ?? []
  ).join("\r\n");
}

/** A complete message, CRLF line ends, every header value checked or built from checked parts. */
export function message(o: {
  from: string;
  to: string[];
  cc: string[];
  subject: string;
  text: string;
  host: string;
}): string {
  for (const a of [o.from, ...o.to, ...o.cc])
    if (!EMAIL.test(a)) throw new Error(`not a plain address: ${JSON.stringify(a)}`);
  if (/[^\x20-\x7e]/.test(o.subject)) throw new Error("the subject must be printable ASCII");
  const id = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}@${o.host.replace(/[^A-Za-z0-9.-]/g, "") || "localhost"}`;
  const headers = [
    `From: ${o.from}`,
    `To: ${o.to.join(", ")}`,
    ...(o.cc.length ? [`Cc: ${o.cc.join(", ")}`] : []),
    `Subject: ${o.subject}`,
    `Date: ${new Date().toUTCString().replace("GMT", "+0000")}`,
    `Message-ID: <${id}>`,
    "Auto-Submitted: auto-generated",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: base64",
  ];
  return `${headers.join("\r\n")}\r\n\r\n${b64lines(o.text)}\r\n`;
}

// ---- delivery --------------------------------------------------------------------------------------

async function viaSendmail(o: Options, rcpts: string[], data: string, signal: AbortSignal): Promise<void> {
  const proc = Bun.spawn([o.sendmail ?? "/usr/sbin/sendmail", "-i", "-f", o.from, "--", ...rcpts], {
    stdin: new TextEncoder().encode(data.replace(/\r\n/g, "\n")),
    stdout: "ignore",
    stderr: "pipe",
  });
  const kill = () => proc.kill();
  signal.addEventListener("abort", kill, { once: true });
  try {
    const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    if (code !== 0) throw new Error(`sendmail exited ${code}: ${err.trim().slice(0, 300)}`);
  } finally {
    signal.removeEventListener("abort", kill);
  }
}

/** A small SMTP client (RFC 5321): EHLO, STARTTLS, AUTH PLAIN, one message. */
async function viaSmtp(o: Options, rcpts: string[], data: string, signal: AbortSignal): Promise<void> {
  const host = o.smtp_host ?? "localhost";
  const port = o.smtp_port ?? 25;
  const starttls = o.smtp_starttls ?? "opportunistic";
  let sock: Socket = netConnect(port, host);
  let buf = "";
  let waiting: { resolve: (r: [number, string[]]) => void; reject: (e: Error) => void } | null = null;
  let failure: Error | null = null;
  const attach = (s: Socket) => {
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      buf += d;
      pump();
    });
    s.on("error", (e) => fail(e));
    s.on("close", () => fail(new Error("the SMTP server closed the connection")));
  };
  const fail = (e: Error) => {
    failure ??= e;
    waiting?.reject(e);
    waiting = null;
  };
  const pump = () => {
    const lines = buf.split("\r\n");
    const last = lines.findIndex((l) => /^\d{3} /.test(l));
    if (last < 0 || !waiting) return;
    const reply = lines.slice(0, last + 1);
    buf = lines.slice(last + 1).join("\r\n");
    const w = waiting;
    waiting = null;
    w.resolve([Number(reply[last]!.slice(0, 3)), reply.map((l) => l.slice(4))]);
  };
  const reply = (): Promise<[number, string[]]> =>
    new Promise((resolve, reject) => {
      if (failure) return reject(failure);
      waiting = { resolve, reject };
      pump();
    });
  const expect = async (cmd: string | null, ok: number[], what = cmd ?? "greeting"): Promise<string[]> => {
    if (cmd !== null) sock.write(`${cmd}\r\n`);
    const [code, text] = await reply();
    if (!ok.includes(code))
      throw new Error(`SMTP ${what.split(" ")[0]}: ${code} ${text.join(" ")}`.slice(0, 300));
    return text;
  };
  const onAbort = () => sock.destroy(new Error("aborted (timeout)"));
  signal.addEventListener("abort", onAbort, { once: true });
  attach(sock);
  try {
    await expect(null, [220]);
    const helo = o.helo ?? hostname();
    let ext = await expect(`EHLO ${helo}`, [250]);
    if (starttls !== "never" && ext.some((l) => /^STARTTLS\b/i.test(l))) {
      await expect("STARTTLS", [220]);
      sock.removeAllListeners();
      sock = tlsConnect({ socket: sock, servername: host });
      attach(sock);
      ext = await expect(`EHLO ${helo}`, [250]);
    } else if (starttls === "require") throw new Error(`SMTP ${host}: no STARTTLS offered`);
    if (o.smtp_user) {
      const pass =
        o.smtp_password ?? (o.smtp_password_file ? readFileSync(o.smtp_password_file, "utf8").trim() : "");
      const token = Buffer.from(`\0${o.smtp_user}\0${pass}`).toString("base64");
      await expect(`AUTH PLAIN ${token}`, [235], "AUTH");
    }
    await expect(`MAIL FROM:<${o.from}>`, [250]);
    for (const r of rcpts) await expect(`RCPT TO:<${r}>`, [250, 251]);
    await expect("DATA", [354]);
    const body = data.replace(/\r?\n/g, "\r\n").replace(/^\./gm, "..");
    await expect(`${body.endsWith("\r\n") ? body : `${body}\r\n`}.`, [250], "DATA end");
    await expect("QUIT", [221]).catch(() => {});
  } finally {
    signal.removeEventListener("abort", onAbort);
    sock.removeAllListeners();
    sock.on("error", () => {});
    sock.destroy();
  }
}

// ---- the action ------------------------------------------------------------------------------------

export function start(ctx: Ctx): void {
  const o = ctx.options;
  if (typeof o.from !== "string" || !EMAIL.test(o.from))
    throw new Error('options: set from = "you@example.org"');
  if (o.to_override !== undefined && !EMAIL.test(o.to_override))
    throw new Error("to_override: not a plain address");
  ctx.state.reported ??= new Map();
}

export async function ban(events: readonly BanEvent[], ctx: Ctx): Promise<void> {
  const o = ctx.options;
  const reported = ctx.state.reported!;
  const repeat = ms(o.repeat_after, 86_400_000);
  const host = hostname();
  const cc = (typeof o.cc === "string" ? [o.cc] : (o.cc ?? [])).filter((a) => EMAIL.test(a));
  for (const ev of events) {
    if (ev.restored) continue;
    const last = reported.get(ev.ip);
    if (last !== undefined && Date.now() - last < repeat) continue;
    // one slow registry must not eat the whole call: a timeout per lookup, under the call's own
    const net = await rdapLookup(
      o.rdap_url ?? "https://rdap.org/ip/",
      ev.ip,
      AbortSignal.any([ctx.signal, AbortSignal.timeout(ms(o.rdap_timeout, 10_000))]),
    );
    const contacts = net ? abuseContacts(net) : [];
    if (contacts.length === 0) {
      ctx.log.warn(
        `${ev.ip}: no abuse contact in RDAP${net?.handle ? ` (${net.handle})` : ""}: not reported`,
      );
      reported.set(ev.ip, Date.now());
      continue;
    }
    const to = o.to_override ? [o.to_override] : contacts;
    const data = message({
      from: o.from,
      to,
      cc,
      subject: `Abuse report: ${ev.ip} attacked ${host} (${ev.jail}, ${ev.failures} attempts)`.replace(
        /[^\x20-\x7e]/g,
        "?",
      ),
      text: reportText(ev, net, o, host),
      host,
    });
    const rcpts = [...to, ...cc];
    if (o.transport === "smtp" || (o.transport === undefined && o.smtp_host))
      await viaSmtp(o, rcpts, data, ctx.signal);
    else await viaSendmail(o, rcpts, data, ctx.signal);
    // marked once sent: a retry of this batch skips it
    reported.set(ev.ip, Date.now());
    ctx.log.info(
      `${ev.ip}: reported to ${to.join(", ")}${o.to_override ? ` (instead of ${contacts.join(", ")})` : ""}`,
    );
  }
}

export function unban(): void {
  // nothing to take back: a report stays sent
}
