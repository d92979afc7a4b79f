/**
 * The control protocol: newline-delimited JSON over a unix socket, one request per line, one
 * reply line per request.
 *
 *   {"cmd":"ping"}                          → {"ok":true,"result":"pong"}
 *   {"cmd":"status"[,"jail":NAME]}          → {"ok":true,"result":{"jails":[{name, failures_total,
 *                                              failures_now, bans_total, banned_now, banned:[ips]}]
 *                                              [,"fleet":{node, connected, lag_ms, last_event_id, events_in,
 *                                              events_out, rejected, ...}]}}   (fleet: without "jail")
 *   {"cmd":"ban","jail":NAME,"ips":[...][,"force":true]}
 *                                           → {"ok":true,"result":{"banned":[...],"already":[...]
 *                                              [,"ignored":[...]]}}  (ignored: in the jail's ignoreip,
 *                                              not banned; "force" bans them too)
 *   {"cmd":"unban","ips":[...]} or {"cmd":"unban","all":true}[,"jail":NAME]
 *                                           → {"ok":true,"result":{"unbanned":[...],"missing":[...]}}
 *   {"cmd":"reload"[,"jail":NAME]}          → {"ok":true,"result":{"jails":[names]}}
 *   {"cmd":"flush"[,"jail":NAME]}           → {"ok":true,"result":{"jails":[names],"unbanned":N,
 *                                              "tables":["inet fail2ts"],"errors":[...]}}
 *                                              (every ban lifted, what the actions created removed;
 *                                              without a jail the whole nft table too)
 *   {"cmd":"stop"}                          → {"ok":true,"result":"stopping"}
 *   any error                               → {"ok":false,"error":"..."}
 */
import type { FleetStatus } from "../fleet/types.ts";

export interface JailStatus {
  name: string;
  failures_total: number;
  failures_now: number;
  bans_total: number;
  banned_now: number;
  banned: string[];
}

export interface StatusResult {
  jails: JailStatus[];
  /** fleet (issue 9): the Redis link, when [fleet] is configured (full status only). */
  fleet?: FleetStatus;
}

export interface BanResult {
  banned: string[];
  already: string[];
  /** In the jail's ignoreip (or ignoreself): refused, unless the request had "force". */
  ignored?: string[];
}

export interface UnbanResult {
  unbanned: string[];
  missing: string[];
}

export interface FlushResult {
  /** Jails whose bans were lifted and whose actions were torn down. */
  jails: string[];
  /** Live bans removed (from the firewall and the database; the history stays). */
  unbanned: number;
  /** Whole nftables tables removed (flush without a jail), as `inet NAME`. */
  tables: string[];
  /** Actions that failed to tear down: `jail=NAME: action: message`. */
  errors: string[];
}

export interface ReloadResult {
  jails: string[];
}

export type Request =
  | { cmd: "ping" }
  | { cmd: "status"; jail?: string }
  | { cmd: "ban"; jail: string; ips: string[]; force?: boolean }
  | { cmd: "unban"; ips?: string[]; all?: boolean; jail?: string }
  | { cmd: "reload"; jail?: string }
  | { cmd: "flush"; jail?: string }
  | { cmd: "stop" };

export type Reply = { ok: true; result: unknown } | { ok: false; error: string };

/** What the server calls; the daemon implements it. */
export interface ControlHandler {
  status(jail?: string): StatusResult;
  ban(jail: string, ips: string[], force?: boolean): BanResult | Promise<BanResult>;
  unban(ips: string[] | "all", jail?: string): UnbanResult | Promise<UnbanResult>;
  reload(jail?: string): Promise<ReloadResult>;
  flush(jail?: string): Promise<FlushResult>;
  stop(): void;
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
    throw new Error(`${what}: expected an array of strings`);
  return v as string[];
}

function optString(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new Error(`${what}: expected a string`);
  return v;
}

/** Checks the shape of a request (untrusted input). */
export function parseRequest(line: string): Request {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    throw new Error("not JSON");
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw new Error("expected a JSON object");
  const r = o as Record<string, unknown>;
  switch (r.cmd) {
    case "ping":
      return { cmd: "ping" };
    case "stop":
      return { cmd: "stop" };
    case "status": {
      const jail = optString(r.jail, "jail");
      return jail ? { cmd: "status", jail } : { cmd: "status" };
    }
    case "reload": {
      const jail = optString(r.jail, "jail");
      return jail ? { cmd: "reload", jail } : { cmd: "reload" };
    }
    case "ban": {
      const jail = optString(r.jail, "jail");
      if (!jail) throw new Error("ban: needs a jail");
      return { cmd: "ban", jail, ips: strings(r.ips, "ips"), ...(r.force === true ? { force: true } : {}) };
    }
    case "flush": {
      const jail = optString(r.jail, "jail");
      return jail ? { cmd: "flush", jail } : { cmd: "flush" };
    }
    case "unban": {
      const jail = optString(r.jail, "jail");
      if (r.all === true) return { cmd: "unban", all: true, ...(jail ? { jail } : {}) };
      return { cmd: "unban", ips: strings(r.ips, "ips"), ...(jail ? { jail } : {}) };
    }
    default:
      throw new Error(
        typeof r.cmd === "string"
          ? `unknown command ${JSON.stringify(r.cmd).slice(0, 40)}`
          : 'expected "cmd"',
      );
  }
}
