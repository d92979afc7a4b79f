/**
 * The daemon's configuration, as the rest of the code sees it: every value checked, durations in
 * seconds, paths absolute, [defaults] folded into each jail.
 */
import type { CompiledFilter } from "../filter/index.ts";
import type { FleetConfig } from "../fleet/config.ts";
import type { IncrementPolicy } from "../jail/increment.ts";

export type Backend = "auto" | "inotify" | "polling" | "journal";
export type UseDns = "yes" | "warn" | "no" | "raw";
export type LogLevel = "debug" | "info" | "warning" | "error";

export interface JailConfig {
  name: string;
  enabled: boolean;
  /** The filter reference as written (`sshd[mode=aggressive]`, or a path made absolute). */
  filter: string;
  /** Absolute paths or globs. */
  logpath: string[];
  logencoding: string;
  backend: Backend;
  /** journalctl match arguments (`_SYSTEMD_UNIT=ssh.service`, `+`, ...). */
  journalmatch: string[];
  port?: string;
  protocol: string;
  banprefix6?: number;
  /** Action names (built-in or [actions.NAME]), in order. */
  action: string[];
  banaction: string;
  maxretry: number;
  /** Seconds. */
  findtime: number;
  /** Seconds, -1 permanent. */
  bantime: number;
  /** IPs, CIDRs, DNS names, `file:/abs/path`. */
  ignoreip: string[];
  ignoreself: boolean;
  /** argv with `<ip>`; exit 0 = ignore the address. */
  ignorecommand: string[];
  usedns: UseDns;
  increment: IncrementPolicy;
}

/** A user-defined action: [actions.NAME], `type` plus the keys of that type. */
export interface ActionConfig {
  name: string;
  type: string;
  [key: string]: unknown;
}

export interface ServerConfig {
  socket: string;
  /** Path of the SQLite database, or ":memory:" (no persistence). */
  database: string;
  /** A file path, "stderr", "stdout" or "journal". */
  logtarget: string;
  loglevel: LogLevel;
  /** Seconds: ban history older than this is purged (live bans never are). */
  dbpurgeage: number;
  /** Remove every ban from the firewall when the daemon stops (they stay in the DB). */
  unban_on_stop: boolean;
  pidfile?: string;
}

export interface Config {
  /** The files read, in order. */
  files: string[];
  /** Every jail, enabled or not, in the order they were first seen. */
  jails: JailConfig[];
  actions: Record<string, ActionConfig>;
  server: ServerConfig;
  /** fleet (issue 9): [fleet], when configured. */
  fleet?: FleetConfig;
}

/** A config plus what validation built and the daemon reuses. */
export interface LoadedConfig {
  config: Config;
  /** Compiled filter per enabled jail. */
  filters: Map<string, CompiledFilter>;
  warnings: string[];
}

export const DEFAULT_CONFIG_PATH = "/etc/fail2ts/fail2ts.toml";

export const DEFAULT_SERVER: ServerConfig = {
  socket: "/run/fail2ts/fail2ts.sock",
  database: "/var/lib/fail2ts/fail2ts.db",
  logtarget: "/var/log/fail2ts/fail2ts.log",
  loglevel: "info",
  dbpurgeage: 86400,
  unban_on_stop: false,
};
