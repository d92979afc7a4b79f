/**
 * Fleet test helpers: a real `redis-server` on 127.0.0.1 with a random port, AOF on, in a temp
 * dir (killed and removed after), and the skip/fail decision when it is not installed.
 */

import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RedisClient, type Subprocess, spawn } from "bun";

const PATH = `${process.env.PATH}:/usr/sbin:/usr/bin:/usr/local/bin`;

/** Why Redis tests cannot run here, or undefined. */
export function redisSupport(): string | undefined {
  if (!Bun.which("redis-server", { PATH }))
    return "redis-server is not installed (apt-get install -y redis-server)";
  return undefined;
}

/**
 * Registers the skip/fail decision for a suite that needs redis-server: true when it can run.
 * Without CI a skip prints its reason; under CI a missing redis-server fails a test.
 */
export function requireRedis(suite: string, t: { test: typeof import("bun:test").test }): boolean {
  const reason = redisSupport();
  if (reason === undefined) return true;
  if (process.env.CI) {
    t.test(`${suite}: prerequisites`, () => {
      throw new Error(`${suite} cannot run under CI: ${reason}`);
    });
  } else console.warn(`skipping ${suite}: ${reason}`);
  return false;
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface RedisOptions {
  /** PEM files: TLS only (no plain port). */
  tls?: { cert: string; key: string; ca: string };
  /** requirepass. */
  password?: string;
}

export class RedisServer {
  proc: Subprocess<"ignore", "ignore", "pipe"> | null = null;
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly o: RedisOptions,
  ) {}

  /** The URL (with the password when there is one). */
  get url(): string {
    const auth = this.o.password ? `:${encodeURIComponent(this.o.password)}@` : "";
    return `${this.o.tls ? "rediss" : "redis"}://${auth}127.0.0.1:${this.port}`;
  }

  /** Starts redis-server (AOF on) in a new temp dir on a free port. */
  static async start(o: RedisOptions = {}): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), "f2ts-redis-"));
    for (let attempt = 0; ; attempt++) {
      const r = new RedisServer(dir, await freePort(), o);
      try {
        await r.launch();
        return r;
      } catch (e) {
        if (attempt >= 3) throw e;
      }
    }
  }

  private async launch(): Promise<void> {
    const bin = Bun.which("redis-server", { PATH })!;
    this.proc = spawn(
      [
        bin,
        ...(this.o.tls
          ? [
              "--port",
              "0",
              "--tls-port",
              String(this.port),
              "--tls-cert-file",
              this.o.tls.cert,
              "--tls-key-file",
              this.o.tls.key,
            ]
          : ["--port", String(this.port)]),
        ...(this.o.tls ? ["--tls-auth-clients", "no"] : []),
        ...(this.o.password ? ["--requirepass", this.o.password] : []),
        "--bind",
        "127.0.0.1",
        "--dir",
        this.dir,
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        join(this.dir, "redis.log"),
      ],
      { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
    );
    const end = Date.now() + 5000;
    for (;;) {
      if (this.proc.exitCode !== null) {
        throw new Error(`redis-server exited ${this.proc.exitCode}: ${this.logText().slice(-500)}`);
      }
      try {
        const c = this.client(500);
        await c.connect();
        const pong = await c.send("PING", []);
        c.close();
        if (pong === "PONG") return;
      } catch {}
      if (Date.now() > end)
        throw new Error(`redis-server did not answer on ${this.port}: ${this.logText().slice(-500)}`);
      await Bun.sleep(20);
    }
  }

  logText(): string {
    const p = join(this.dir, "redis.log");
    return existsSync(p) ? readFileSync(p, "utf8") : "";
  }

  private client(timeout: number): RedisClient {
    return new RedisClient(this.url, {
      autoReconnect: false,
      connectionTimeout: timeout,
      ...(this.o.tls ? { tls: { ca: readFileSync(this.o.tls.ca, "utf8") } } : {}),
    });
  }

  /** One command on a short-lived connection. */
  async cmd(command: string, ...args: string[]): Promise<unknown> {
    const c = this.client(2000);
    try {
      await c.connect();
      return await c.send(command, args);
    } finally {
      c.close();
    }
  }

  /** Stops it: SIGTERM (the AOF is flushed), or SIGKILL. */
  async stop(hard = false): Promise<void> {
    const p = this.proc;
    if (!p) return;
    if (p.exitCode === null) p.kill(hard ? "SIGKILL" : "SIGTERM");
    await Promise.race([p.exited, Bun.sleep(5000)]);
    if (p.exitCode === null) {
      p.kill("SIGKILL");
      await p.exited;
    }
    this.proc = null;
  }

  /** Starts it again on the same port and dir (the AOF is replayed). */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  pause(): void {
    this.proc?.kill("SIGSTOP");
  }

  resume(): void {
    this.proc?.kill("SIGCONT");
  }

  async cleanup(): Promise<void> {
    this.resume();
    await this.stop(true);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A self-signed certificate for 127.0.0.1 in `dir` (openssl), or null when openssl is missing. */
export function selfSigned(dir: string): { cert: string; key: string; ca: string } | null {
  if (!Bun.which("openssl", { PATH })) return null;
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const r = Bun.spawnSync(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
    ].concat(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]),
    { stdout: "ignore", stderr: "pipe" },
  );
  if (r.exitCode !== 0) return null;
  return { cert, key, ca: cert };
}

/** Writes a fleet key file (mode 600) into `dir`. */
export function writeKey(dir: string, key = "0123456789abcdef0123456789abcdef", name = "fleet.key"): string {
  const p = join(dir, name);
  writeFileSync(p, `${key}\n`, { mode: 0o600 });
  chmodSync(p, 0o600);
  return p;
}
