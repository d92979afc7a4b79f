/**
 * Fail2ban's regex tags: `<HOST>`, `<ADDR>`, `<IP4>`, `<IP6>`, `<DNS>`, `<CIDR>`, `<SUBNET>`,
 * `<F-ID/>`, `<F-PORT/>`, `<SKIPLINES>` and `<F-NAME>…</F-NAME>` captures. Expansion yields a
 * Python-syntax regex (named groups `(?P<…>`); translate.ts turns it into a JS RegExp.
 */

const IP4 = String.raw`(?:\d{1,3}\.){3}\d{1,3}`;
// Fail2ban counts the groups ({1,7}); a counted group compiled with the `u` flag runs up to
// 150× slower in JavaScriptCore on long near-miss lines, so repeat freely: the capture is
// validated as an address afterwards anyway.
const IP6 = String.raw`(?:[0-9a-fA-F]{1,4}::?|::)+(?:[0-9a-fA-F]{1,4}|(?<=:):)`;

const R_IP4 = String.raw`(?:::f{4,6}:)?(?P<ip4>${IP4})`;
const R_IP6 = String.raw`(?P<ip6>${IP6})`;
const R_DNS = String.raw`(?P<dns>[\w\-.^_]*\w)`;
const R_ADDR = String.raw`\[?(?:${R_IP4}|${R_IP6})\]?`;
const R_HOST = `(?:${R_ADDR}|${R_DNS})`;
/** What `<HOST>` and `<ADDR>` expand to (Python syntax): text without a space in any match. */
export const HOST_PATTERNS: readonly string[] = [R_HOST, R_ADDR];
const R_CIDR = String.raw`(?P<cidr>\d+)`;
const R_SUBNET = String.raw`\[?(?:${R_IP4}|${R_IP6})(?:/${R_CIDR})?\]?`;

const SIMPLE: Record<string, string> = {
  IP4: R_IP4,
  "F-IP4/": R_IP4,
  IP6: R_IP6,
  "F-IP6/": R_IP6,
  ADDR: R_ADDR,
  "F-ADDR/": R_ADDR,
  CIDR: R_CIDR,
  "F-CIDR/": R_CIDR,
  SUBNET: R_SUBNET,
  "F-SUBNET/": R_SUBNET,
  DNS: R_DNS,
  "F-DNS/": R_DNS,
  "F-ID/": String.raw`(?P<fid>\S+)`,
  "F-PORT/": String.raw`(?P<fport>\w+)`,
};

/** Capture names with another group name than their tag. */
const GROUP_MAP: Record<string, string> = { id: "fid", port: "fport" };

export function tagToGroup(tag: string): string {
  const t = tag.toLowerCase();
  return GROUP_MAP[t] ?? t;
}

const TAG = /<\/?[\w-]+\/?>/g;
const CUSTOM = /^(\/?)F-([A-Z0-9_-]+)$/;

export interface TagOptions {
  /** "no" makes `<HOST>` match addresses only (Fail2ban's usedns=no). */
  useDns?: "yes" | "warn" | "no" | "raw";
}

/** Expands the tags of one regex. Unknown `<...>` text is left as it is (it is literal regex). */
export function expandTags(regex: string, opts: TagOptions = {}): string {
  const open = new Set<string>();
  let skip = 0;
  return regex.replace(TAG, (tag) => {
    const name = tag.slice(1, -1);
    if (name === "HOST") return opts.useDns === "no" ? R_ADDR : R_HOST;
    if (name === "SKIPLINES") return String.raw`\n(?P<skiplines${skip++}>(?:(?:.*\n)*?))`;
    const simple = SIMPLE[name];
    if (simple !== undefined) return simple;
    const m = CUSTOM.exec(name);
    if (!m) return tag;
    const [, closing, tn] = m;
    if (closing) return open.has(tn!) ? ")" : tag;
    open.add(tn!);
    return `(?P<${tagToGroup(tn!)}>`;
  });
}
