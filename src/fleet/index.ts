/** Fleet: bans shared across hosts through a Redis stream, signed events, fleet-wide failure counting. */
export { checkFleet, effectiveFleet, type FleetConfig, readKey } from "./config.ts";
export { fleetHost, fleetJail } from "./daemon.ts";
export { Fleet, type FleetDeps, streamKey } from "./fleet.ts";
export { fleetLines } from "./status.ts";
export type { BanNote, FleetHook, FleetHost, FleetJail, FleetStatus } from "./types.ts";
