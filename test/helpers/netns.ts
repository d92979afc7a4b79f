/**
 * Network namespaces for firewall tests: every nft/iptables/ipset command of a test runs inside a
 * namespace the test created (`ip netns exec NS ...`), so the host's firewall is never touched.
 *
 *   const ns = await Netns.create();   // ip netns add f2t-test-<pid>-<n>, lo up
 *   ns.exec                            // an Exec for createAction: prefixes `ip netns exec NS`
 *   await ns.delete();                 // in afterAll
 *
 * `firewallSupport(tools)` says why such tests cannot run here (not root, tool missing); tests
 * skip with that message, except under CI where a missing prerequisite is a failure.
 */
import { type Exec, type ExecOptions, type ExecResult, spawnExec } from "../../src/action/exec.ts";
import type { ActionLogger, BanEvent } from "../../src/action/types.ts";

let counter = 0;
const live = new Set<string>();

export class Netns {
  private constructor(readonly name: string) {}

  static async create(): Promise<Netns> {
    const name = `f2t-test-${process.pid}-${counter++}`;
    const res = await spawnExec(["ip", "netns", "add", name]);
    if (res.code !== 0) throw new Error(`ip netns add ${name}: ${res.stderr.trim()}`);
    live.add(name);
    const ns = new Netns(name);
    const lo = await ns.run(["ip", "link", "set", "lo", "up"]);
    if (lo.code !== 0) throw new Error(`lo up in ${name}: ${lo.stderr.trim()}`);
    return ns;
  }

  /** Runs argv inside the namespace. */
  run(argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    return spawnExec(["ip", "netns", "exec", this.name, ...argv], opts);
  }

  /** An Exec for actions: every program runs inside the namespace. */
  get exec(): Exec {
    return (argv, opts) => this.run(argv, opts);
  }

  /** Runs argv inside the namespace and returns stdout; throws on a non-zero exit. */
  async out(argv: string[], opts?: ExecOptions): Promise<string> {
    const res = await this.run(argv, opts);
    if (res.code !== 0)
      throw new Error(`${argv.join(" ")} (in ${this.name}) exited ${res.code}: ${res.stderr}`);
    return res.stdout;
  }

  async delete(): Promise<void> {
    if (!live.has(this.name)) return;
    await spawnExec(["ip", "netns", "delete", this.name]);
    live.delete(this.name);
  }
}

/** Why namespaced firewall tests cannot run here, or undefined when they can. */
export function firewallSupport(tools: string[]): string | undefined {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "not root (network namespaces need CAP_SYS_ADMIN)";
  const missing = ["ip", ...tools].filter(
    (t) => !Bun.which(t, { PATH: `${process.env.PATH}:/usr/sbin:/sbin` }),
  );
  if (missing.length)
    return `missing ${missing.join(", ")} (apt-get install -y nftables iptables ipset iproute2)`;
  return undefined;
}

/**
 * Registers the skip/fail decision for a namespaced suite: returns true when the suite can run.
 * Without CI a skip prints its reason; with CI set, a missing prerequisite fails a test.
 */
export function requireFirewall(
  suite: string,
  tools: string[],
  t: { test: typeof import("bun:test").test },
): boolean {
  const reason = firewallSupport(tools);
  if (reason === undefined) return true;
  if (process.env.CI) {
    t.test(`${suite}: prerequisites`, () => {
      throw new Error(`${suite} cannot run under CI: ${reason}`);
    });
  } else {
    console.warn(`skipping ${suite}: ${reason}`);
  }
  return false;
}

/** Deletes namespaces a crashed test left behind from this process (call in afterAll). */
export async function deleteAllNetns(): Promise<void> {
  for (const name of [...live]) {
    await spawnExec(["ip", "netns", "delete", name]);
    live.delete(name);
  }
}

const PROBE = `
const [host, port, local] = process.argv.slice(-3);
const net = require("node:net");
const s = net.connect({ host, port: Number(port), localAddress: local || undefined, timeout: 1500 });
s.on("connect", () => { console.log("open"); s.destroy(); });
s.on("timeout", () => { console.log("timeout"); s.destroy(); });
s.on("error", (e) => console.log(e.code === "ECONNREFUSED" ? "refused" : "error " + e.code));
`;

/**
 * Tries a TCP connection inside the namespace from `local` to host:port (a listener must be up):
 * "open", "refused" (reject), "timeout" (drop) or "error CODE".
 */
export async function probeTcp(ns: Netns, host: string, port: number, local?: string): Promise<string> {
  const res = await ns.run([process.execPath, "-e", PROBE, host, String(port), local ?? ""]);
  return res.stdout.trim();
}

/** Starts a TCP listener inside the namespace on [::]:port (dual stack); returns a stopper. */
export function listenTcp(ns: Netns, port: number): { ready: Promise<void>; stop: () => void } {
  const code = `require("node:net").createServer((c) => c.destroy()).listen({ port: ${port}, host: "::" }, () => console.log("ready"));`;
  const proc = Bun.spawn(["ip", "netns", "exec", ns.name, process.execPath, "-e", code], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const ready = (async () => {
    const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    if (!value || !new TextDecoder().decode(value).includes("ready"))
      throw new Error("listener did not start");
  })();
  return { ready, stop: () => proc.kill() };
}

// ---- event builders and a collecting logger, shared by the action tests ----

export function ev(ip: string, over: Partial<BanEvent> = {}): BanEvent {
  return {
    ip,
    jail: "sshd",
    time: Math.floor(Date.now() / 1000),
    bantime: 600,
    failures: 5,
    count: 0,
    matches: [`Failed password for root from ${ip} port 22 ssh2`],
    ...over,
  };
}

export interface MemoryLog extends ActionLogger {
  lines: string[];
}

export function memoryLog(): MemoryLog {
  const lines: string[] = [];
  const at = (level: string) => (msg: string) => {
    lines.push(`${level}: ${msg}`);
  };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** n distinct IPv4 addresses from 10.0.0.1 on. */
export function v4s(n: number, base = 10): string[] {
  const out: string[] = [];
  for (let i = 1; i <= n; i++) out.push(`${base}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  return out;
}
