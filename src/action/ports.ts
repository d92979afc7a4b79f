/**
 * The jail's port and protocol spec (Fail2ban's forms: "ssh", "22", "80,443", "1000:2000"),
 * resolved once to numbers so every backend renders the same thing and nothing but digits reaches
 * a rule.
 */

import { readFileSync } from "node:fs";
import { Fail2tsError } from "../util/errors.ts";
import type { Options, Schema } from "./options.ts";
import type { JailInfo } from "./types.ts";

export type PortRange = [number, number];

export const PROTOCOLS = ["tcp", "udp", "sctp", "dccp"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** What a firewall rule matches: protocols and ports, or everything (`all`). */
export interface Match {
  /** Empty = every protocol (and then every port). */
  protocols: Protocol[];
  /** Empty = every port. */
  ports: PortRange[];
}

const FALLBACK: Record<string, number> = {
  ftp: 21,
  ssh: 22,
  telnet: 23,
  smtp: 25,
  domain: 53,
  http: 80,
  pop3: 110,
  imap: 143,
  imap2: 143,
  ldap: 389,
  https: 443,
  submissions: 465,
  smtps: 465,
  submission: 587,
  imaps: 993,
  pop3s: 995,
  mysql: 3306,
  postgresql: 5432,
  "http-alt": 8080,
};

let services: Map<string, number> | undefined;

function serviceTable(): Map<string, number> {
  if (services) return services;
  services = new Map(Object.entries(FALLBACK));
  try {
    for (const raw of readFileSync("/etc/services", "utf8").split("\n")) {
      const line = raw.replace(/#.*/, "").trim();
      if (!line) continue;
      const [name, portProto, ...aliases] = line.split(/\s+/);
      const m = /^(\d+)\/(tcp|udp|sctp|dccp)$/.exec(portProto ?? "");
      if (!name || !m) continue;
      for (const n of [name, ...aliases]) if (!services.has(n)) services.set(n, Number(m[1]));
    }
  } catch {
    // no /etc/services: the fallback table
  }
  return services;
}

function port(token: string, spec: string): number {
  if (/^\d+$/.test(token)) {
    const n = Number(token);
    if (n >= 1 && n <= 65535) return n;
  } else if (/^[A-Za-z][A-Za-z0-9_.+-]*$/.test(token)) {
    const n = serviceTable().get(token.toLowerCase());
    if (n !== undefined) return n;
    throw new Fail2tsError(
      "config",
      `port ${JSON.stringify(spec)}: unknown service ${JSON.stringify(token)}`,
    );
  }
  throw new Fail2tsError("config", `port ${JSON.stringify(spec)}: bad port ${JSON.stringify(token)}`);
}

/** "ssh,80,1000:2000" → [[22,22],[80,80],[1000,2000]]; "" / undefined / "all" / "any" → []. */
export function parsePorts(spec: string | undefined): PortRange[] {
  const s = (spec ?? "").trim();
  if (s === "" || s === "all" || s === "any" || s === "0:65535" || s === "1:65535") return [];
  const out: PortRange[] = [];
  for (const raw of s.split(",")) {
    const token = raw.trim();
    if (!token) continue;
    const colon = token.indexOf(":");
    if (colon >= 0) {
      const lo = port(token.slice(0, colon).trim(), s);
      const hi = port(token.slice(colon + 1).trim(), s);
      if (hi < lo) throw new Fail2tsError("config", `port ${JSON.stringify(s)}: range ${token} is reversed`);
      out.push([lo, hi]);
    } else {
      const p = port(token, s);
      out.push([p, p]);
    }
  }
  out.sort((a, b) => a[0] - b[0]);
  // merge overlapping and adjacent ranges (nft refuses overlapping elements in an anonymous set)
  const merged: PortRange[] = [];
  for (const r of out) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  return merged;
}

/** "tcp" (default), "udp", "tcp,udp", "all". */
export function parseProtocols(spec: string | undefined): Protocol[] {
  const s = (spec ?? "tcp").trim().toLowerCase() || "tcp";
  if (s === "all" || s === "any" || s === "ip") return [];
  const out: Protocol[] = [];
  for (const raw of s.split(",")) {
    const p = raw.trim();
    if (!(PROTOCOLS as readonly string[]).includes(p)) {
      throw new Fail2tsError("config", `protocol ${JSON.stringify(s)}: expected tcp, udp, sctp, dccp or all`);
    }
    if (!out.includes(p as Protocol)) out.push(p as Protocol);
  }
  return out;
}

/** The options every firewall action takes: what to block, and whether to drop or reject. */
export const BLOCK_SCHEMA: Schema = {
  allports: "boolean",
  blocktype: { oneOf: ["reject", "drop"] },
  port: "string",
  protocol: "string",
};

/** Reads BLOCK_SCHEMA's options: the jail's port and protocol unless the action names its own. */
export function blocking(opts: Options, jail: JailInfo): { match: Match; drop: boolean } {
  return {
    match: jailMatch(
      opts.str("port") ?? jail.port,
      opts.str("protocol") ?? jail.protocol,
      opts.bool("allports", false),
    ),
    drop: opts.str("blocktype", "reject") === "drop",
  };
}

/** The match for a jail; `allports` (or protocol all) drops the port restriction. */
export function jailMatch(port: string | undefined, protocol: string | undefined, allports: boolean): Match {
  const protocols = parseProtocols(protocol);
  const ports = allports || protocols.length === 0 ? [] : parsePorts(port);
  return { protocols, ports };
}

/** Renders ranges with a separator for ranges: nft "22, 1000-2000", iptables "22,1000:2000". */
export function renderPorts(ports: PortRange[], rangeSep: string, listSep: string): string {
  return ports.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}${rangeSep}${hi}`)).join(listSep);
}
