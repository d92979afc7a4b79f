/**
 * Fleet events as they sit in the Redis stream: flat string fields (readable with
 * `redis-cli XRANGE fail2ts:events - +`), signed with HMAC-SHA256 over a canonical encoding.
 *
 *   v 1  type ban|unban  ip  jail  time  bantime  expiry  node  failures  ts  sig
 *
 * - `time`: when the ban started (epoch seconds, 3 decimals); `bantime` seconds (-1 permanent);
 *   `expiry` = time + bantime (-1 permanent; 0 for an unban). A ban whose expiry has passed is
 *   never applied, whoever replays it.
 * - `ts`: the origin's publish clock in ms, strictly increasing per node (kept in its DB), so a
 *   receiver that remembers the last ts it saw from each node drops a replayed copy of an older
 *   event. An unban only lifts a ban that started before its ts.
 * - `sig`: base64url HMAC-SHA256(key, canonical), where canonical is the stream key and the
 *   fields above, in that order, joined by "\n". Every field is checked to hold no "\n", so the
 *   encoding is unambiguous; the stream key in it stops an event signed for one fleet from being
 *   replayed into another that shares the key.
 */
import type * as NodeCrypto from "node:crypto";
import { JAIL_NAME } from "../action/addr.ts";
import { normalizeIP } from "../util/ip.ts";
import { NODE_NAME } from "./config.ts";

/** node:crypto, loaded at the first use (it pulls in the streams: not worth it at every start). */
function nodeCrypto(): typeof NodeCrypto {
  return require("node:crypto") as typeof NodeCrypto;
}

export const EVENT_VERSION = "1";

export interface FleetEvent {
  type: "ban" | "unban";
  ip: string;
  jail: string;
  /** Ban start, epoch seconds. */
  time: number;
  /** Seconds; -1 permanent; 0 for an unban. */
  bantime: number;
  /** Epoch seconds; -1 permanent; 0 for an unban. */
  expiry: number;
  /** Origin node. */
  node: string;
  failures: number;
  /** Origin's publish clock, epoch ms, increasing per node. */
  ts: number;
}

const FIELDS = ["v", "type", "ip", "jail", "time", "bantime", "expiry", "node", "failures", "ts"] as const;
/** Longest value accepted in any field (an event is small; anything bigger is garbage). */
const MAX_FIELD = 128;

function canonical(stream: string, f: Record<string, string>): string {
  let s = stream;
  for (const k of FIELDS) s += `\n${f[k]}`;
  return s;
}

function mac(key: Buffer, text: string): Buffer {
  return nodeCrypto().createHmac("sha256", key).update(text).digest();
}

function fmtTime(t: number): string {
  return (Math.round(t * 1000) / 1000).toString();
}

/** The stream fields of an event, signed: [k1, v1, k2, v2, ...] as XADD takes them. */
export function encodeEvent(e: FleetEvent, stream: string, key: Buffer): string[] {
  const f: Record<string, string> = {
    v: EVENT_VERSION,
    type: e.type,
    ip: e.ip,
    jail: e.jail,
    time: fmtTime(e.time),
    bantime: String(Math.round(e.bantime)),
    expiry: e.expiry < 0 ? "-1" : fmtTime(e.expiry),
    node: e.node,
    failures: String(Math.max(0, Math.round(e.failures))),
    ts: String(Math.round(e.ts)),
  };
  const out: string[] = [];
  for (const k of FIELDS) out.push(k, f[k]!);
  out.push("sig", mac(key, canonical(stream, f)).toString("base64url"));
  return out;
}

export type DecodeResult = { ok: true; event: FleetEvent } | { ok: false; reason: string };

const NUM = /^-?\d{1,13}(\.\d{1,3})?$/;
const INT = /^-?\d{1,16}$/;

/**
 * Checks and decodes stream fields: shape, signature (constant time), then values. The signature
 * is checked before anything in the event is trusted; an unsigned or badly signed event is
 * rejected with a reason (for the debug log; the count is what status shows).
 */
export function decodeEvent(
  fields: readonly string[] | Record<string, string>,
  stream: string,
  key: Buffer,
): DecodeResult {
  const f: Record<string, string> = Object.create(null);
  if (typeof fields !== "object" || fields === null) return { ok: false, reason: "malformed entry" };
  if (Array.isArray(fields)) {
    if (fields.length % 2 !== 0 || fields.length > 40) return { ok: false, reason: "malformed entry" };
    for (let i = 0; i < fields.length; i += 2) {
      const k = fields[i];
      const v = fields[i + 1];
      if (typeof k !== "string" || typeof v !== "string") return { ok: false, reason: "malformed entry" };
      f[k] = v;
    }
  } else {
    for (const [k, v] of Object.entries(fields)) {
      if (typeof v !== "string") return { ok: false, reason: "malformed entry" };
      f[k] = v;
    }
  }
  const sig = f.sig;
  if (sig === undefined) return { ok: false, reason: "unsigned" };
  if (f.v !== EVENT_VERSION)
    return { ok: false, reason: `unknown version ${JSON.stringify(f.v ?? null).slice(0, 20)}` };
  for (const k of FIELDS) {
    const v = f[k];
    if (v === undefined) return { ok: false, reason: `no ${k}` };
    if (v.length > MAX_FIELD || v.includes("\n")) return { ok: false, reason: `bad ${k}` };
  }
  let given: Buffer;
  try {
    given = Buffer.from(sig, "base64url");
  } catch {
    return { ok: false, reason: "bad signature" };
  }
  const want = mac(key, canonical(stream, f));
  if (given.length !== want.length || !nodeCrypto().timingSafeEqual(given, want))
    return { ok: false, reason: "bad signature" };

  // signed by a holder of the key: now the values
  const type = f.type;
  if (type !== "ban" && type !== "unban") return { ok: false, reason: "bad type" };
  const ip = f.ip!;
  if (normalizeIP(ip) !== ip) return { ok: false, reason: "bad ip" };
  const jail = f.jail!;
  if (!JAIL_NAME.test(jail) || jail.length > 32) return { ok: false, reason: "bad jail" };
  const node = f.node!;
  if (!NODE_NAME.test(node)) return { ok: false, reason: "bad node" };
  if (
    !NUM.test(f.time!) ||
    !INT.test(f.bantime!) ||
    !NUM.test(f.expiry!) ||
    !INT.test(f.failures!) ||
    !INT.test(f.ts!)
  ) {
    return { ok: false, reason: "bad number" };
  }
  const time = Number(f.time);
  const bantime = Number(f.bantime);
  const expiry = Number(f.expiry);
  const failures = Number(f.failures);
  const ts = Number(f.ts);
  if (type === "ban") {
    if (bantime === 0 || bantime < -1) return { ok: false, reason: "bad bantime" };
    if (bantime === -1 ? expiry !== -1 : Math.abs(expiry - (time + bantime)) > 1)
      return { ok: false, reason: "bad expiry" };
  }
  if (failures < 0 || ts <= 0 || time < 0) return { ok: false, reason: "bad number" };
  return { ok: true, event: { type, ip, jail, time, bantime, expiry, node, failures, ts } };
}

/** The signed member of a failure window: `node|ts|seq|mac` (mac over jail, ip and the rest). */
export function failureMember(
  key: Buffer,
  jail: string,
  ip: string,
  node: string,
  ts: number,
  seq: number,
): string {
  const head = `${node}|${ts}|${seq}`;
  return `${head}|${mac(key, `fail\n${jail}\n${ip}\n${head}`).subarray(0, 16).toString("base64url")}`;
}

/** The node of a failure-window member when its mac checks out, else null. */
export function checkFailureMember(key: Buffer, jail: string, ip: string, member: string): string | null {
  const i = member.lastIndexOf("|");
  if (i < 0 || member.length > 200) return null;
  const head = member.slice(0, i);
  let given: Buffer;
  try {
    given = Buffer.from(member.slice(i + 1), "base64url");
  } catch {
    return null;
  }
  const want = mac(key, `fail\n${jail}\n${ip}\n${head}`).subarray(0, 16);
  if (given.length !== want.length || !nodeCrypto().timingSafeEqual(given, want)) return null;
  return head.slice(0, head.indexOf("|"));
}
