/**
 * Addresses: validation and normalisation of what filters capture, and a CIDR matcher for
 * ignoreip. A captured host is untrusted log content: it becomes an id only if it is a valid
 * IPv4/IPv6 address or DNS name.
 */
import ipaddr from "ipaddr.js";

export type HostKind = "ip4" | "ip6" | "dns";

export interface Host {
  kind: HostKind;
  /** IPv4 dotted quad; IPv6 compressed lower case (RFC 5952); DNS name lower case. */
  value: string;
}

/** Parses a dotted quad strictly (no leading zeros, each octet 0-255). Returns the uint32 or -1. */
export function parseIPv4(s: string): number {
  let n = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      n = n * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return n * 256 + octet;
}

/** The canonical text of an IPv4 address given as its number (parseIPv4's inverse). */
export function formatIPv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** A dotted quad with octets up to 255 but leading zeros ("192.0.2.09"): not an address. */
export function isLooseIPv4(s: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  return m?.slice(1).every((o) => Number(o) <= 255) ?? false;
}

export function isIPv4(s: string): boolean {
  return parseIPv4(s) >= 0;
}

/** Parses IPv6 text (optionally in brackets, with an embedded IPv4 tail) into 8 16-bit parts. */
export function parseIPv6(text: string): number[] | null {
  let s = text;
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  if (s.length < 2 || s.length > 45 || s.indexOf(":") < 0) return null;
  if (!s.includes(".")) return hexIPv6(s);
  if (!/^[0-9A-Fa-f:.]+$/.test(s)) return null;
  if (!ipaddr.IPv6.isValid(s)) return null;
  try {
    return ipaddr.IPv6.parse(s).parts.slice();
  } catch {
    return null;
  }
}

/**
 * parseIPv6 of text without a dot (no embedded IPv4): the same answers as ipaddr.js
 * (test/ip.test.ts holds it to that), without its regexes and objects. A scan meets thousands
 * of IPv6 attackers, each read once per worker, in code still cold: normalizeHost took ~4.5 µs
 * an address with ipaddr.js (7 ms a worker on the 1M-line auth.log), ~1.7 µs with this loop.
 */
function hexIPv6(s: string): number[] | null {
  const parts: number[] = [];
  let gap = -1; // where "::" stands, in parts
  let i = 0;
  const n = s.length;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return null;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    let v = 0;
    let digits = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c === 58) break;
      const h = c >= 48 && c <= 57 ? c - 48 : (c | 32) >= 97 && (c | 32) <= 102 ? (c | 32) - 87 : -1;
      if (h < 0) return null;
      v = v * 16 + h;
      if (++digits > 4) return null;
    }
    if (digits === 0) return null;
    parts.push(v);
    if (i === n) break;
    i++; // ":"
    if (i === n) return null; // a single colon at the end
    if (s.charCodeAt(i) === 58) {
      if (gap >= 0) return null;
      gap = parts.length;
      i++;
    }
  }
  if (gap < 0) return parts.length === 8 ? parts : null;
  if (parts.length > 7) return null; // "::" stands for one group at least
  const zeros = new Array<number>(8 - parts.length).fill(0);
  return [...parts.slice(0, gap), ...zeros, ...parts.slice(gap)];
}

/** RFC 5952 text of 8 parts: lower case, longest run (>1) of zero groups compressed. */
export function formatIPv6(parts: readonly number[]): string {
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number, b: number) => {
    let t = "";
    for (let i = a; i < b; i++) t += i > a ? `:${parts[i]!.toString(16)}` : parts[i]!.toString(16);
    return t;
  };
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

function mappedIPv4(parts: readonly number[]): string | null {
  for (let i = 0; i < 5; i++) if (parts[i] !== 0) return null;
  if (parts[5] !== 0xffff) return null;
  const a = parts[6]!;
  const b = parts[7]!;
  return `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
}

const DNS_LABEL =
  /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** A DNS name: letters, digits, `-`, `_`, dots between labels; not all digits and dots. */
export function isDnsName(s: string): boolean {
  if (!DNS_LABEL.test(s)) return false;
  return /[A-Za-z_-]/.test(s);
}

/** Normalises an IP text (v4 or v6, mapped v4 to v4). Null when it is not an address. */
export function normalizeIP(text: string): string | null {
  if (parseIPv4(text) >= 0) return text;
  const parts = parseIPv6(text);
  if (!parts) return null;
  return mappedIPv4(parts) ?? formatIPv6(parts);
}

/**
 * Validates and normalises a captured host. `hint` says which capture group it came from
 * (a text captured as ip4 must be IPv4, and so on); null when the capture is neither a
 * valid address nor a DNS name — such a line is not a failure.
 */
export function normalizeHost(text: string, hint?: HostKind): Host | null {
  if (text.length === 0 || text.length > 253) return null;
  if (hint !== "dns") {
    if (parseIPv4(text) >= 0) return hint === "ip6" ? null : { kind: "ip4", value: text };
    const parts = parseIPv6(text);
    if (parts) {
      const v4 = mappedIPv4(parts);
      return v4 ? { kind: "ip4", value: v4 } : { kind: "ip6", value: formatIPv6(parts) };
    }
    if (hint === "ip4" || hint === "ip6") return null;
  }
  if (isDnsName(text)) {
    // A dotted-quad lookalike that failed IPv4 parsing (999.1.1.1) is not a name either.
    if (/^[\d.]+$/.test(text)) return null;
    return { kind: "dns", value: text.toLowerCase() };
  }
  return null;
}

export function isIP(text: string): boolean {
  return normalizeIP(text) !== null;
}

/** Applies an IPv6 prefix to a normalised address: `2001:db8::1`, 64 → `2001:db8::/64`. */
export function ipv6Prefix(ip: string, prefix: number): string {
  const parts = parseIPv6(ip);
  if (!parts || prefix >= 128) return ip;
  const out = parts.map((p, i) => {
    const bits = Math.max(0, Math.min(16, prefix - i * 16));
    return bits === 16 ? p : bits === 0 ? 0 : p & ((0xffff << (16 - bits)) & 0xffff);
  });
  return `${formatIPv6(out)}/${prefix}`;
}

interface Net4 {
  base: number;
  mask: number;
}
interface Net6 {
  parts: number[];
  bits: number;
}

/** A compiled set of IPs and CIDRs (v4 and v6). */
export interface CidrMatcher {
  has(ip: string): boolean;
  readonly size: number;
}

/** Parses `1.2.3.4`, `10.0.0.0/8`, `127.0.0.1/8`, `::1`, `2001:db8::/32`. Null when invalid. */
export function parseCidr(text: string): { v4?: Net4; v6?: Net6 } | null {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const bitsText = slash < 0 ? "" : text.slice(slash + 1);
  if (bitsText !== "" && !/^\d{1,3}$/.test(bitsText)) return null;
  const v4 = parseIPv4(addr);
  if (v4 >= 0) {
    const bits = bitsText === "" ? 32 : Number(bitsText);
    if (bits > 32) return null;
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    return { v4: { base: (v4 & mask) >>> 0, mask } };
  }
  const parts = parseIPv6(addr);
  if (!parts) return null;
  const bits = bitsText === "" ? 128 : Number(bitsText);
  if (bits > 128) return null;
  const v4m = mappedIPv4(parts);
  if (v4m && bits >= 96) return parseCidr(`${v4m}/${bits - 96}`);
  return { v6: { parts, bits } };
}

function in6(parts: number[], net: Net6): boolean {
  let left = net.bits;
  for (let i = 0; i < 8 && left > 0; i++) {
    const take = Math.min(16, left);
    const mask = (0xffff << (16 - take)) & 0xffff;
    if ((parts[i]! & mask) !== (net.parts[i]! & mask)) return false;
    left -= take;
  }
  return true;
}

/** Compiles IPs/CIDRs once into a matcher; throws on an invalid entry (message names it). */
export function cidrMatcher(entries: readonly string[]): CidrMatcher {
  const v4: Net4[] = [];
  const v6: Net6[] = [];
  for (const e of entries) {
    const p = parseCidr(e.trim());
    if (!p) throw new Error(`not an IP address or CIDR: ${JSON.stringify(e)}`);
    if (p.v4) v4.push(p.v4);
    if (p.v6) v6.push(p.v6);
  }
  return {
    size: v4.length + v6.length,
    has(ip: string): boolean {
      const slash = ip.indexOf("/");
      const addr = slash < 0 ? ip : ip.slice(0, slash);
      const n = parseIPv4(addr);
      if (n >= 0) {
        for (const net of v4) if ((n & net.mask) >>> 0 === net.base) return true;
        return false;
      }
      const parts = parseIPv6(addr);
      if (!parts) return false;
      const m = mappedIPv4(parts);
      if (m) return this.has(m);
      for (const net of v6) if (in6(parts, net)) return true;
      return false;
    },
  };
}
