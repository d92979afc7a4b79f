/**
 * The boundary between the fleet and the daemon: what the fleet needs of a jail (FleetJail, the
 * daemon builds it), what a jail tells the fleet (FleetHook), and the status block.
 */

/** One jail of this host, as the fleet drives it. */
export interface FleetJail {
  /** The jail is running (started, not being removed). */
  readonly active: boolean;
  /** Seconds: the window of fleet-wide failure counting. */
  readonly findtime: number;
  /** Whether this host never bans `ip` in this jail (ignoreip, ignoreself, ignorecommand). */
  ignores(ip: string): boolean | Promise<boolean>;
  /** The jail's live ban of `ip` here, if any (epoch seconds it started). */
  banOf(ip: string): { time: number } | undefined;
  /** Applies a ban from another node: stored, scheduled, logged, through the jail's actions; not republished. */
  applyBan(b: { ip: string; time: number; bantime: number; failures: number }, origin: string): void;
  /** Lifts a ban because another node unbanned the address (not republished). */
  applyUnban(ip: string, origin: string): void;
  /** Bans here as this host's own decision (global_maxretry reached): published like a local ban. */
  banNow(ip: string, failures: number): void;
}

/** What the fleet needs from the daemon. */
export interface FleetHost {
  jail(name: string): FleetJail | undefined;
}

/** A ban as the jail reports it to the fleet. */
export interface BanNote {
  ip: string;
  jail: string;
  /** Epoch seconds. */
  time: number;
  /** Seconds, -1 permanent. */
  bantime: number;
  failures: number;
}

/** What a jail tells the fleet (the daemon wires it into each jail). */
export interface FleetHook {
  /** Local bans (automatic or manual; not those that came from the fleet). */
  banned(bans: readonly BanNote[]): void;
  /** Manual unbans of one jail. */
  unbanned(jail: string, bans: ReadonlyArray<{ ip: string }>): void;
  /** One counted failure (not ignored, not already banned), for global_maxretry. */
  failure(jail: string, ip: string, time: number): void;
}

/** The `fleet` block of `status`. */
export interface FleetStatus {
  node: string;
  /** The Redis URL, password hidden. */
  redis: string;
  connected: boolean;
  /** Epoch seconds of the last change between connected and not. */
  since: number;
  /** Why it is not connected. */
  error?: string;
  /** Id of the last stream entry applied here. */
  last_event_id: string | null;
  /** ms between that entry's id (Redis time of XADD) and its arrival here; 0 when caught up and idle. */
  lag_ms: number | null;
  /** Fleet bans and unbans applied here. */
  events_in: number;
  /** Events published to the stream. */
  events_out: number;
  /** Stream entries dropped: unsigned, badly signed, malformed. */
  rejected: number;
  /** Valid events not applied: own, replayed, expired, already banned, jail not accepted or absent. */
  skipped: number;
  /** Fleet bans not applied because the address is ignored here. */
  ignored: number;
  /** Outgoing events waiting in the database. */
  queued: number;
  /** Outgoing events dropped because the queue was full. */
  dropped: number;
  /** Bans this host made because the fleet-wide failure count reached global_maxretry. */
  global_bans: number;
}
