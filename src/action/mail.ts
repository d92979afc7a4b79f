/**
 * Mail on ban (and optionally unban): SMTP through nodemailer, or the local sendmail binary run
 * as an argv with the message on stdin. The message is composed by nodemailer as text/plain:
 * log lines are data in the body (encoded as needed), never interpreted — no `mail` command with
 * tilde escapes (Fail2ban's CVE-2021-32749), no shell, no line breaks in headers.
 */
import { hostname } from "node:os";
import type { Transporter } from "nodemailer";

/** nodemailer is loaded on the first mail, not at every start of the binary (~5 ms). */
async function nodemailer() {
  return await import("nodemailer");
}

import { Fail2tsError } from "../util/errors.ts";
import { type Exec, run } from "./exec.ts";
import { Delivered, eachLimited, eventKey, type Kind } from "./notify.ts";
import type { Options, Schema } from "./options.ts";
import { eventValues, oneLine, substitute } from "./template.ts";
import type { Action, ActionLogger, BanEvent, JailInfo } from "./types.ts";

export const MAIL_SCHEMA: Schema = {
  transport: { oneOf: ["smtp", "sendmail"] },
  to: "string|string[]",
  from: "string",
  subject: "string",
  body: "string",
  unban_subject: "string",
  unban_body: "string",
  events: "string[]",
  restored: "boolean",
  digest: "int",
  host: "string",
  port: "int",
  secure: "boolean",
  starttls: { oneOf: ["opportunistic", "require", "never"] },
  user: "string",
  password: "string",
  sendmail: "string",
  timeout: "duration",
};

export const DEFAULT_SUBJECT = "[fail2ts] <jail>: banned <ip>";
export const DEFAULT_BODY = `Hi,

The address <ip> has been banned by fail2ts after <failures> failures in jail <jail>.
Time: <isotime>
Ban time: <bantime> s (-1 = permanent), previous bans: <count>

Matched lines:
<matches>

Regards,
fail2ts
`;
export const DEFAULT_UNBAN_SUBJECT = "[fail2ts] <jail>: unbanned <ip>";
export const DEFAULT_UNBAN_BODY = "The address <ip> has been unbanned by fail2ts in jail <jail>.\n";

const ADDRESS = /^[^\s<>()"',;:\\[\]-][^\s<>()"',;:\\[\]]*@[A-Za-z0-9.-]+$/;

export class MailAction implements Action {
  readonly name: string;
  private readonly to: string[];
  private readonly from: string;
  private readonly events: Kind[];
  private readonly restored: boolean;
  private readonly digest: number;
  private readonly templates: Record<Kind, { subject: string; body: string }>;
  private readonly transport: "smtp" | "sendmail";
  private readonly sendmail: string;
  private readonly timeoutMs: number;
  private readonly smtpOptions: Record<string, unknown> | undefined;
  private smtp: Transporter | undefined;
  private composer: Transporter | undefined;
  private readonly delivered = new Delivered();

  constructor(
    name: string,
    _jail: JailInfo,
    opts: Options,
    private readonly exec: Exec,
    private readonly log: ActionLogger,
    private readonly dryRun = false,
  ) {
    this.name = name;
    this.to = opts.list("to") ?? ["root@localhost"];
    this.from = opts.str("from", `fail2ts@${hostname()}`);
    for (const a of [...this.to, this.from]) {
      if (!ADDRESS.test(a))
        opts.fail(a === this.from ? "from" : "to", `${JSON.stringify(a)} is not a plain address`);
    }
    this.events = (opts.list("events") ?? ["ban"]) as Kind[];
    for (const e of this.events)
      if (e !== "ban" && e !== "unban") opts.fail("events", 'use "ban" and/or "unban"');
    this.restored = opts.bool("restored", false);
    this.digest = opts.int("digest", 10);
    this.templates = {
      ban: { subject: opts.str("subject", DEFAULT_SUBJECT), body: opts.str("body", DEFAULT_BODY) },
      unban: {
        subject: opts.str("unban_subject", DEFAULT_UNBAN_SUBJECT),
        body: opts.str("unban_body", DEFAULT_UNBAN_BODY),
      },
    };
    this.transport = (opts.str("transport") ?? (opts.has("host") ? "smtp" : "sendmail")) as
      | "smtp"
      | "sendmail";
    this.sendmail = opts.str("sendmail", "/usr/sbin/sendmail");
    this.timeoutMs = opts.ms("timeout", 30_000);
    if (this.transport === "smtp") {
      const starttls = opts.str("starttls", "opportunistic");
      const user = opts.str("user");
      this.smtpOptions = {
        host: opts.str("host", "localhost"),
        port: opts.int("port", opts.bool("secure", false) ? 465 : 25),
        secure: opts.bool("secure", false),
        requireTLS: starttls === "require",
        ignoreTLS: starttls === "never",
        auth: user ? { user, pass: opts.str("password", "") } : undefined,
        connectionTimeout: this.timeoutMs,
        greetingTimeout: this.timeoutMs,
        socketTimeout: this.timeoutMs,
      };
    }
  }

  async start(): Promise<void> {}
  async flush(): Promise<void> {}
  async stop(): Promise<void> {}

  /** The subject and body for one event (or a digest of many). */
  compose(kind: Kind, events: BanEvent[]): { subject: string; text: string } {
    const t = this.templates[kind];
    if (events.length === 1) {
      const v = eventValues(events[0]!);
      return { subject: oneLine(substitute(t.subject, v)), text: substitute(t.body, v) };
    }
    const first = events[0]!;
    const verb = kind === "ban" ? "banned" : "unbanned";
    const subject = oneLine(`[fail2ts] ${first.jail}: ${verb} ${events.length} addresses`);
    const lines = events.map((ev) => `${ev.ip}\t${ev.failures} failures\tbantime ${ev.bantime}`);
    return {
      subject,
      text: `fail2ts ${verb} ${events.length} addresses in jail ${first.jail}:\n\n${lines.join("\n")}\n`,
    };
  }

  private async send(kind: Kind, events: BanEvent[]): Promise<void> {
    const { subject, text } = this.compose(kind, events);
    if (this.dryRun) {
      this.log.info(`${this.name}: would mail ${this.to.join(", ")}: ${subject}`);
      return;
    }
    const message = { from: this.from, to: this.to, subject, text };
    if (this.smtpOptions) {
      this.smtp ??= (await nodemailer()).createTransport(this.smtpOptions);
      try {
        await this.smtp.sendMail(message);
      } catch (err) {
        throw new Fail2tsError("action", `${this.name} ${kind}: SMTP: ${(err as Error).message}`);
      }
      return;
    }
    this.composer ??= (await nodemailer()).createTransport({
      streamTransport: true,
      buffer: true,
      newline: "unix",
    });
    const info = await this.composer.sendMail(message);
    await run(this.exec, this.name, kind, [this.sendmail, "-i", "-f", this.from, "--", ...this.to], {
      stdin: info.message as Buffer,
      timeoutMs: this.timeoutMs,
    });
  }

  private async notify(kind: Kind, batch: BanEvent[]): Promise<void> {
    if (!this.events.includes(kind)) return;
    const todo = batch.filter(
      (ev) => (this.restored || !ev.restored) && !this.delivered.has(eventKey(kind, ev)),
    );
    if (todo.length === 0) return;
    if (this.digest > 0 && todo.length > this.digest) {
      await this.send(kind, todo);
      this.delivered.clear();
      return;
    }
    await eachLimited(todo, 2, async (ev) => {
      await this.send(kind, [ev]);
      this.delivered.add(eventKey(kind, ev));
    });
    this.delivered.clear();
  }

  ban(batch: BanEvent[]): Promise<void> {
    return this.notify("ban", batch);
  }

  unban(batch: BanEvent[]): Promise<void> {
    return this.notify("unban", batch);
  }
}
