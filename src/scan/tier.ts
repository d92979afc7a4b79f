/**
 * Bun's JavaScriptCore compiles on the main thread (its concurrent JIT is off), so an optimizing
 * compile is CPU the serial part of a scan spends instead of replaying failures. The top tier
 * (FTL) costs several milliseconds per hot loop, more than its code gains over the tier below
 * (DFG, within 10% on these loops) in a replay of a few hundred thousand failures: measured
 * 20 ms of the parent's CPU on a log of a million lines.
 */
import { noFTL } from "bun:jsc";

/** Keeps these functions at the DFG tier. */
export function dfgOnly(...fns: Array<Parameters<typeof noFTL>[0]>): void {
  for (const f of fns) noFTL(f);
}
