/**
 * Webhook: one HTTP POST per event with a JSON body
 * `{event, ip, jail, time, bantime, failures, count, matches}`, a timeout per attempt and a few
 * quick retries (the runner's backoff takes over after that). 2xx is success.
 */
import { Fail2tsError } from "../util/errors.ts";
import { Delivered, eachLimited, eventKey, type Kind } from "./notify.ts";
import type { Options, Schema } from "./options.ts";
import type { Action, ActionLogger, BanEvent, JailInfo } from "./types.ts";

export const WEBHOOK_SCHEMA: Schema = {
  url: "string",
  headers: "headers",
  timeout: "duration",
  retries: "int",
  retry_delay: "duration",
  events: "string[]",
  restored: "boolean",
  concurrency: "int",
};

/** The JSON posted: the event's kind and these fields of the ban (the wire format, spelled out). */
export type WebhookBody = { event: Kind } & Pick<
  BanEvent,
  "ip" | "jail" | "time" | "bantime" | "failures" | "count" | "matches" | "restored"
>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class WebhookAction implements Action {
  readonly name: string;
  private readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly events: Kind[];
  private readonly restored: boolean;
  private readonly concurrency: number;
  private readonly delivered = new Delivered();

  constructor(
    name: string,
    _jail: JailInfo,
    opts: Options,
    private readonly log: ActionLogger,
    private readonly dryRun = false,
  ) {
    this.name = name;
    const url = opts.str("url");
    if (!url) opts.fail("url", "required");
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      opts.fail("url", `${JSON.stringify(url)} is not a URL`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
      opts.fail("url", "must be http:// or https://");
    this.url = url;
    this.headers = {
      "content-type": "application/json",
      "user-agent": "fail2ts",
      ...opts.headers("headers"),
    };
    for (const [k, v] of Object.entries(this.headers)) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k) || /[\r\n\0]/.test(v))
        opts.fail("headers", `bad header ${k}`);
    }
    this.timeoutMs = opts.ms("timeout", 10_000);
    this.retries = opts.int("retries", 2);
    this.retryDelayMs = opts.ms("retry_delay", 1_000);
    this.events = (opts.list("events") ?? ["ban", "unban"]) as Kind[];
    for (const e of this.events)
      if (e !== "ban" && e !== "unban") opts.fail("events", 'use "ban" and/or "unban"');
    this.restored = opts.bool("restored", false);
    this.concurrency = Math.max(1, opts.int("concurrency", 4));
  }

  async start(): Promise<void> {}
  async flush(): Promise<void> {}
  async stop(): Promise<void> {}

  static body(kind: Kind, ev: BanEvent): WebhookBody {
    const b: WebhookBody = {
      event: kind,
      ip: ev.ip,
      jail: ev.jail,
      time: ev.time,
      bantime: ev.bantime,
      failures: ev.failures,
      count: ev.count,
      matches: ev.matches,
    };
    if (ev.restored) b.restored = true;
    return b;
  }

  private async post(kind: Kind, ev: BanEvent): Promise<void> {
    const body = JSON.stringify(WebhookAction.body(kind, ev));
    if (this.dryRun) {
      this.log.info(`${this.name}: would POST ${this.url} ${body}`);
      return;
    }
    let last = "";
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) await sleep(this.retryDelayMs * 2 ** (attempt - 1));
      try {
        const res = await fetch(this.url, {
          method: "POST",
          headers: this.headers,
          body,
          signal: AbortSignal.timeout(this.timeoutMs),
          redirect: "manual",
        });
        await res.arrayBuffer().catch(() => {});
        if (res.status >= 200 && res.status < 300) return;
        last = `HTTP ${res.status}`;
      } catch (err) {
        const e = err as Error;
        last = e.name === "TimeoutError" ? `timed out after ${this.timeoutMs} ms` : e.message;
      }
      this.log.debug(`${this.name} ${kind} ${ev.ip}: attempt ${attempt + 1} failed: ${last}`);
    }
    throw new Fail2tsError("action", `${this.name} ${kind}: POST ${this.url} failed: ${last}`);
  }

  private async notify(kind: Kind, batch: BanEvent[]): Promise<void> {
    if (!this.events.includes(kind)) return;
    const todo = batch.filter(
      (ev) => (this.restored || !ev.restored) && !this.delivered.has(eventKey(kind, ev)),
    );
    await eachLimited(todo, this.concurrency, async (ev) => {
      await this.post(kind, ev);
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
