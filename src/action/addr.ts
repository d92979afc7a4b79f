/**
 * Addresses as the firewall actions need them: re-validated (nothing unparsed ever reaches an nft
 * script, an ipset/iptables-restore file or hosts.deny), split by family, with the jail's IPv6 ban
 * prefix applied.
 */
import ipaddr from "ipaddr.js";

/** A validated ban target: a host (prefix 32/128) or a network. */
export interface Target {
  family: 4 | 6;
  /** Canonical address; the network address for a network. */
  addr: string;
  prefix: number;
}

const V4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Parses `1.2.3.4`, `2001:db8::1`, `10.0.0.0/8`, `2001:db8::/64`; undefined when invalid. Strict:
 * dotted quads only (no `1.2.3`, hex or octal forms inet_aton would take), no zone ids.
 */
export function parseTarget(ip: string): Target | undefined {
  if (ip.length > 64) return undefined;
  const slash = ip.indexOf("/");
  const addr = slash < 0 ? ip : ip.slice(0, slash);
  let prefix: number | undefined;
  if (slash >= 0) {
    const len = ip.slice(slash + 1);
    if (!/^\d{1,3}$/.test(len)) return undefined;
    prefix = Number(len);
  }
  if (V4.test(addr)) {
    if (prefix === undefined) return { family: 4, addr, prefix: 32 };
    if (prefix > 32) return undefined;
    return { family: 4, addr: ipaddr.IPv4.networkAddressFromCIDR(`${addr}/${prefix}`).toString(), prefix };
  }
  if (!addr.includes(":") || addr.includes("%") || !/^[0-9A-Fa-f:.]+$/.test(addr)) return undefined;
  let a: ipaddr.IPv6;
  try {
    a = ipaddr.IPv6.parse(addr);
  } catch {
    return undefined;
  }
  const p = prefix ?? 128;
  if (p > 128) return undefined;
  if (a.isIPv4MappedAddress() && p >= 96) {
    const v4 = a.toIPv4Address().toString();
    return parseTarget(p === 128 ? v4 : `${v4}/${p - 96}`);
  }
  if (p === 128) return { family: 6, addr: a.toString(), prefix: 128 };
  return {
    family: 6,
    addr: ipaddr.IPv6.networkAddressFromCIDR(`${a.toString()}/${p}`).toString(),
    prefix: p,
  };
}

/** Widens an IPv6 host (or a narrower network) to its /prefix6 network; v4 and wider nets unchanged. */
export function withPrefix6(t: Target, prefix6: number | undefined): Target {
  if (t.family !== 6 || prefix6 === undefined || prefix6 >= 128 || t.prefix <= prefix6) return t;
  const net = ipaddr.IPv6.networkAddressFromCIDR(`${t.addr}/${prefix6}`).toString();
  return { family: 6, addr: net, prefix: prefix6 };
}

/** `addr` for a host, `addr/len` for a network. */
export function targetString(t: Target): string {
  return t.prefix === (t.family === 4 ? 32 : 128) ? t.addr : `${t.addr}/${t.prefix}`;
}

export function isHost(t: Target): boolean {
  return t.prefix === (t.family === 4 ? 32 : 128);
}

/** The mask for an IPv6 prefix length in nft notation, e.g. 64 → `ffff:ffff:ffff:ffff::`. */
export function v6Mask(prefix: number): string {
  const bytes = new Array<number>(16).fill(0);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] = (0xff << (8 - bits)) & 0xff;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** Jail names become part of set, chain, table and file markers: keep them to a safe alphabet. */
export const JAIL_NAME = /^[A-Za-z0-9_-]+$/;
