/**
 * Micro-benchmark of the date detector: lines/s for typical line shapes.
 * Run: TZ=Europe/Zurich bun scripts/bench-dates.ts [lines]
 */
import { createDateDetector, type DateDetectorOptions } from "../src/filter/dates.ts";

const N = Number(process.argv[2] ?? 1_000_000);
const MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number) => String(n).padStart(2, "0");

/** 1000 distinct lines of a shape; second i of a day that starts at day `d0`. */
function lines(shape: (i: number) => string): string[] {
  return Array.from({ length: 1000 }, (_, i) => shape(i * 37));
}

function clock(s: number): [number, number, number, number] {
  return [Math.floor(s / 86400) % 28, Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60];
}

const shapes: [string, string[], DateDetectorOptions][] = [
  [
    "syslog (default templates)",
    lines((s) => {
      const [d, h, m, x] = clock(s);
      return `${MON[d % 12]} ${String(d + 1).padStart(2, " ")} ${pad(h)}:${pad(m)}:${pad(x)} host sshd[${s}]: Failed password for root from 192.0.2.${s % 250} port 22 ssh2`;
    }),
    {},
  ],
  [
    "ISO 8601 (default templates)",
    lines((s) => {
      const [d, h, m, x] = clock(s);
      return `2024-03-${pad(d + 1)}T${pad(h)}:${pad(m)}:${pad(x)}.${String(s % 1000000).padStart(6, "0")}+01:00 host sshd[${s}]: Invalid user admin from 192.0.2.${s % 250}`;
    }),
    {},
  ],
  [
    "apache access, date mid-line (default templates)",
    lines((s) => {
      const [d, h, m, x] = clock(s);
      return `192.0.2.${s % 250} - - [${pad(d + 1)}/Oct/2023:${pad(h)}:${pad(m)}:${pad(x)} -0700] "GET /wp-login.php HTTP/1.1" 404 196 "-" "Mozilla/5.0"`;
    }),
    {},
  ],
  [
    "no date at all (default templates)",
    lines((s) => `host sshd[${s}]: Connection closed by 192.0.2.${s % 250} port ${s} [preauth]`),
    {},
  ],
  [
    "syslog, datepattern {^LN-BEG}",
    lines((s) => {
      const [d, h, m, x] = clock(s);
      return `${MON[d % 12]} ${String(d + 1).padStart(2, " ")} ${pad(h)}:${pad(m)}:${pad(x)} host sshd[${s}]: Failed password for root from 192.0.2.${s % 250} port 22 ssh2`;
    }),
    { datepattern: "{^LN-BEG}" },
  ],
  [
    "custom datepattern ^%Y-%m-%d %H:%M:%S",
    lines((s) => {
      const [d, h, m, x] = clock(s);
      return `2024-03-${pad(d + 1)} ${pad(h)}:${pad(m)}:${pad(x)} login failed for 192.0.2.${s % 250}`;
    }),
    { datepattern: "^%Y-%m-%d %H:%M:%S" },
  ],
];

const now = () => 1_730_000_000;
console.log(`${N} lines per shape, best of 3 runs; rates by process CPU time (the machine may be shared)`);
for (const [label, sample, opts] of shapes) {
  const dd = createDateDetector({ ...opts, now });
  let sink = 0;
  for (let i = 0; i < 200_000; i++) sink += dd.match(sample[i % sample.length]!)?.time ?? 0; // warm-up
  let best = Number.POSITIVE_INFINITY;
  let bestWall = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 3; run++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) sink += dd.match(sample[i % sample.length]!)?.time ?? 0;
    const c = process.cpuUsage(c0);
    best = Math.min(best, (c.user + c.system) / 1e6);
    bestWall = Math.min(bestWall, (performance.now() - t0) / 1000);
  }
  const rate = (s: number) => `${(N / s / 1e6).toFixed(2).padStart(5)} M lines/s`;
  console.log(`${label.padEnd(50)} ${rate(best)}  (wall clock: ${rate(bestWall)})${sink === 0.5 ? "" : ""}`);
}
