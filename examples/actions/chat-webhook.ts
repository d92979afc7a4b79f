/**
 * fail2ts script action: post bans to a chat channel through an incoming webhook — one message
 * per batch, formatted for the chat, with the matched log lines as inert text.
 *
 *   [actions.chat]
 *   type = "script"
 *   path = "/etc/fail2ts/actions/chat-webhook.ts"
 *   options = { format = "slack", url_file = "/etc/fail2ts/chat.url" }
 *
 * Options:
 *   url / url_file  the webhook URL, or a file holding it (keep the secret out of the config)
 *   format          "slack" (also Rocket.Chat), "mattermost", "discord", or "text" ({"text": ...})
 *   events          ["ban"] (default) or ["ban", "unban"]
 *   restored        also post re-applied bans (daemon restart, retries); default false
 *   max_addresses   addresses per message (default 10; more become more messages)
 *   max_lines       log lines shown per address (default 3)
 *   mention         text put before the message, e.g. "<!here>" or "@ops"
 *   timeout         per request, seconds or "10s" (default 10 s; the action's timeout still applies)
 *
 * Log lines come from attackers (user names, URLs, agents). They go inside a code block, with
 * control and bidi characters made visible and the chat's own syntax defused: no mass mention, no
 * link, no closing fence can come from a log line.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { ActionContext, BanEvent } from "./fail2ts.d.ts";

type Format = "slack" | "mattermost" | "discord" | "text";

interface Options {
  url?: string;
  url_file?: string;
  format?: Format;
  events?: string[];
  restored?: boolean;
  max_addresses?: number;
  max_lines?: number;
  mention?: string;
  timeout?: number | string;
}

interface State {
  url?: string;
  /** Events already posted in a batch that then failed: the retry skips them. */
  sent?: Set<string>;
}

type Ctx = ActionContext<Options, State>;

const FORMATS: Format[] = ["slack", "mattermost", "discord", "text"];
/** Discord refuses content over 2000 characters; the others take far more. */
const LIMIT: Record<Format, number> = { slack: 12000, mattermost: 12000, discord: 2000, text: 12000 };

function seconds(v: number | string | undefined, dflt: number): number {
  if (typeof v === "number") return v;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(v ?? "");
  if (!m) return dflt;
  return Number(m[1]) * ({ ms: 0.001, s: 1, m: 60 }[m[2] ?? "s"] ?? 1);
}

function duration(s: number): string {
  if (s < 0) return "permanent";
  if (s % 86400 === 0) return `${s / 86400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

/** Control characters, DEL, C1, bidi overrides and zero-width marks as visible escapes. */
export function visible(line: string): string {
  return line.replace(
    /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A log line made safe inside a code block of `format`. */
export function codeLine(line: string, format: Format): string {
  let s = visible(line).replace(/\t/g, " ");
  // no backtick can close the fence (U+02CB looks alike)
  if (format !== "text") s = s.replace(/`/g, "\u02cb");
  // Slack reads &, < and > as its markup even in code: <!channel>, <https://evil|click>
  if (format === "slack") s = s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

/** The message text for a batch of one kind. Addresses and jail names are validated by fail2ts. */
export function render(kind: "ban" | "unban", events: readonly BanEvent[], o: Options, host: string): string {
  const format = o.format ?? "slack";
  const b = (s: string) => (format === "text" ? s : format === "slack" ? `*${s}*` : `**${s}**`);
  const maxLines = o.max_lines ?? 3;
  const jails = [...new Set(events.map((e) => e.jail))].join(", ");
  const n = events.length;
  const head =
    kind === "ban"
      ? `${format === "text" ? "" : ":no_entry: "}fail2ts on ${b(host)} banned ${b(String(n))} address${n === 1 ? "" : "es"} in jail ${b(jails)}`
      : `${format === "text" ? "" : ":white_check_mark: "}fail2ts on ${b(host)} unbanned ${n === 1 ? b(events[0]!.ip) : `${b(String(n))} addresses`} in jail ${b(jails)}`;
  const parts = [o.mention ? `${o.mention} ${head}` : head];
  if (kind === "unban") {
    if (n > 1) parts.push(events.map((e) => (format === "text" ? e.ip : `\`${e.ip}\``)).join(", "));
    return parts.join("\n");
  }
  for (const e of events) {
    const again = e.count > 0 ? `, ban #${e.count + 1}` : "";
    const ip = format === "text" ? e.ip : `\`${e.ip}\``;
    parts.push(`• ${ip}: ${e.failures} failures, ${duration(e.bantime)}${again}`);
    const lines = e.matches.slice(-maxLines).map((l) => codeLine(l, format));
    if (lines.length === 0) continue;
    if (format === "text") parts.push(...lines.map((l) => `    ${l}`));
    else parts.push(`\`\`\`\n${lines.join("\n")}\n\`\`\``);
  }
  return parts.join("\n");
}

function body(text: string, format: Format): string {
  const limit = LIMIT[format];
  const t = text.length > limit ? `${text.slice(0, limit - 20)}\n… (cut)` : text;
  if (format === "discord") return JSON.stringify({ content: t, allowed_mentions: { parse: [] } });
  if (format === "slack") return JSON.stringify({ text: t, unfurl_links: false, unfurl_media: false });
  return JSON.stringify({ text: t });
}

export function start(ctx: Ctx): void {
  const o = ctx.options;
  const format = o.format ?? "slack";
  if (!FORMATS.includes(format)) throw new Error(`format: use one of ${FORMATS.join(", ")}`);
  const url = (o.url ?? (o.url_file ? readFileSync(o.url_file, "utf8") : "")).trim();
  if (!/^https?:\/\//.test(url)) throw new Error("set url (or url_file) to the webhook's http(s) URL");
  ctx.state.url = url;
  ctx.state.sent ??= new Set();
}

async function post(ctx: Ctx, kind: "ban" | "unban", events: readonly BanEvent[]): Promise<void> {
  const o = ctx.options;
  const format = o.format ?? "slack";
  const url = ctx.state.url!;
  const sent = ctx.state.sent!;
  const want = o.events ?? ["ban"];
  if (!want.includes(kind)) return;
  const todo = events.filter((e) => (o.restored || !e.restored) && !sent.has(`${kind} ${e.ip} ${e.time}`));
  const per = Math.max(1, o.max_addresses ?? 10);
  const host = hostname();
  const timeout = AbortSignal.timeout(seconds(o.timeout, 10) * 1000);
  for (let i = 0; i < todo.length; i += per) {
    const chunk = todo.slice(i, i + per);
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "fail2ts-chat-webhook" },
      body: body(render(kind, chunk, o, host), format),
      signal: AbortSignal.any([ctx.signal, timeout]),
      redirect: "error",
    });
    const reply = await res.text().catch(() => "");
    // the URL is a secret: name the host only
    if (!res.ok) throw new Error(`${new URL(url).host} answered HTTP ${res.status}: ${reply.slice(0, 200)}`);
    for (const e of chunk) sent.add(`${kind} ${e.ip} ${e.time}`);
    ctx.log.debug(`posted ${chunk.length} ${kind}s to ${new URL(url).host}`);
  }
  sent.clear();
}

export function ban(events: readonly BanEvent[], ctx: Ctx): Promise<void> {
  return post(ctx, "ban", events);
}

export function unban(events: readonly BanEvent[], ctx: Ctx): Promise<void> {
  return post(ctx, "unban", events);
}
