/**
 * What crosses the boundary between the ban manager and the actions.
 * Actions get batches, never single addresses: one tick's bans go to the firewall in one
 * transaction.
 */

/** One ban or unban as the actions see it. */
export interface BanEvent {
  /** Normalised address (IPv4 dotted quad, IPv6 compressed lower case) or a CIDR (`2001:db8::/64`). */
  ip: string;
  jail: string;
  /** When the ban started, epoch seconds. */
  time: number;
  /** Ban length in seconds; -1 is permanent. */
  bantime: number;
  /** Failures that led to the ban. */
  failures: number;
  /** How many times this address was banned before (bantime increment), 0 for the first. */
  count: number;
  /** The log lines that matched (untrusted text: never interpreted by a shell). */
  matches: string[];
  /**
   * Set when the ban is re-applied (daemon restart, re-sync after a failure) rather than new.
   * Notification actions (mail, webhook) skip restored bans unless told otherwise.
   */
  restored?: boolean;
}

/** The jail an action instance serves: names, ports, protocol. */
export interface JailInfo {
  name: string;
  /** Port spec as in Fail2ban: "ssh", "22", "80,443", "1000:2000"; empty/undefined = all ports. */
  port?: string;
  /** "tcp" (default), "udp", "all"... */
  protocol?: string;
  /** IPv6 prefix length to ban instead of /128 (e.g. 64). */
  banprefix6?: number;
}

export interface ActionLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** One action instance, bound to one jail. Every method is idempotent. */
export interface Action {
  /** "nftables", "hostsdeny", or the user's name from [actions.NAME]. */
  readonly name: string;
  /** Create what the action needs (table, set, chain). Called once before the first ban. */
  start(): Promise<void>;
  ban(batch: BanEvent[]): Promise<void>;
  unban(batch: BanEvent[]): Promise<void>;
  /**
   * Unbans then bans in one step (one nft transaction). Optional: the runner falls back to
   * unban() then ban().
   */
  update?(unbans: BanEvent[], bans: BanEvent[]): Promise<void>;
  /**
   * Make this jail's bans exactly `batch` (after start), replacing whatever is there, in one step
   * where the backend allows (nft transaction, ipset swap, iptables-restore, one rename).
   * Optional: the runner falls back to ban(batch).
   */
  restore?(batch: BanEvent[]): Promise<void>;
  /** Whether what start() created is still in place (e.g. someone flushed the ruleset). */
  check?(): Promise<boolean>;
  /** Remove every ban of this jail but keep the structure. */
  flush(): Promise<void>;
  /** Tear down what start() created (on `fail2ts flush`, or stop with unban-on-stop). */
  stop(): Promise<void>;
}
