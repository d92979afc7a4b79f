/** `fail2ts status`: the fleet block, as text lines. */
import type { FleetStatus } from "./types.ts";

function clock(epochS: number): string {
  const d = new Date(epochS * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The lines `status` prints under the jails; `bold` styles the heading. */
export function fleetLines(s: FleetStatus, bold: (t: string) => string = (t) => t): string[] {
  const state = s.connected
    ? `connected since ${clock(s.since)}`
    : `NOT CONNECTED since ${clock(s.since)}${s.error ? ` (${s.error})` : ""}`;
  return [
    `${bold("fleet")} node ${s.node}, ${s.redis}: ${state}`,
    `  last event   ${s.last_event_id ?? "none yet"}${s.lag_ms !== null ? `, lag ${s.lag_ms} ms` : ""}`,
    `  events       in ${s.events_in}, out ${s.events_out}, rejected ${s.rejected}, skipped ${s.skipped}, ignored here ${s.ignored}`,
    `  outgoing     ${s.queued} queued, ${s.dropped} dropped`,
    `  global bans  ${s.global_bans}`,
  ];
}
