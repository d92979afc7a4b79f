/**
 * Durations as Fail2ban users write them: seconds (600), "90s", "10m", "1h30m", "1d",
 * "2w", "1mo", "1y"; -1 or "forever"/"permanent" for a permanent ban.
 */
const UNITS: Record<string, number> = {
  s: 1,
  sec: 1,
  second: 1,
  seconds: 1,
  m: 60,
  min: 60,
  minute: 60,
  minutes: 60,
  h: 3600,
  hour: 3600,
  hours: 3600,
  d: 86400,
  day: 86400,
  days: 86400,
  w: 604800,
  week: 604800,
  weeks: 604800,
  mo: 2592000,
  month: 2592000,
  months: 2592000,
  y: 31536000,
  year: 31536000,
  years: 31536000,
};

/** Seconds, or null when the text is not a duration. -1 means permanent. */
export function parseDuration(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) && (value >= 0 || value === -1) ? value : null;
  if (typeof value !== "string") return null;
  const s = value.trim().toLowerCase();
  if (s === "") return null;
  if (s === "-1" || s === "forever" || s === "permanent" || s === "never") return -1;
  if (/^\d+(?:\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)\s*([a-z]+)\s*/gy;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return null;
    const unit = UNITS[m[2]!];
    if (unit === undefined) return null;
    total += Number(m[1]) * unit;
    pos = re.lastIndex;
  }
  return total;
}

/** "1h30m", "10m", "45s", "permanent". */
export function formatDuration(seconds: number): string {
  if (seconds < 0) return "permanent";
  if (seconds === 0) return "0s";
  let rest = Math.round(seconds);
  let out = "";
  for (const [u, n] of [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ] as const) {
    if (rest >= n) {
      out += `${Math.floor(rest / n)}${u}`;
      rest %= n;
    }
  }
  return out;
}
