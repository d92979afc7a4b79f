/**
 * The daemon side of the fleet boundary: a FleetJail over a JailRuntime and the ban book, so the
 * daemon's own files only create the Fleet, pass its hook to the jails and show its status.
 */
import type { BanBook } from "../daemon/bans.ts";
import type { JailRuntime } from "../daemon/jail.ts";
import type { FleetHost, FleetJail } from "./types.ts";

/** A FleetJail over a running jail. */
export function fleetJail(rt: JailRuntime, book: BanBook): FleetJail {
  const ignores = (ip: string): boolean | Promise<boolean> => {
    if (rt.ignore.has(ip)) return true;
    return rt.ignore.hasCommand ? rt.ignore.commandSays(ip) : false;
  };
  return {
    get active() {
      return rt.active;
    },
    findtime: rt.config.findtime,
    ignores,
    banOf: (ip) => book.get(rt.name, ip),
    applyBan(b, origin) {
      rt.fleetBan(
        {
          jail: rt.name,
          ip: b.ip,
          time: b.time,
          bantime: b.bantime,
          count: 0,
          failures: b.failures,
          matches: [],
        },
        origin,
      );
    },
    applyUnban(ip, origin) {
      const b = book.remove(rt.name, ip);
      if (b) rt.unban([b], `fleet: unbanned on ${origin}`);
    },
    banNow(ip, failures) {
      // the counted failures passed ignoreip/ignoreself; ignorecommand is asked here, as for any ban
      const ig = ignores(ip);
      const go = (ignored: boolean) => {
        if (!ignored && rt.active && !book.get(rt.name, ip)) rt.manualBan([ip], failures);
      };
      if (typeof ig === "boolean") go(ig);
      else void ig.then(go);
    },
  };
}

/** The FleetHost of a daemon: its jails by name. */
export function fleetHost(jail: (name: string) => JailRuntime | undefined, book: BanBook): FleetHost {
  return {
    jail(name) {
      const rt = jail(name);
      return rt ? fleetJail(rt, book) : undefined;
    },
  };
}
