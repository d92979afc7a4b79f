/**
 * The control socket: a unix stream socket (its directory 0700 when we create it, the socket
 * 0600), newline-delimited JSON requests answered in order on each connection.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { Socket, UnixSocketListener } from "bun";
import { Fail2tsError } from "../util/errors.ts";
import { request } from "./client.ts";
import { type ControlHandler, parseRequest, type Reply } from "./protocol.ts";

const MAX_LINE = 64 * 1024 * 1024;

interface ConnState {
  /** Bytes of the request line being received (a large one comes in many chunks). */
  parts: Buffer[];
  size: number;
  chain: Promise<void>;
  out: Buffer[];
  closed: boolean;
}

export class ControlServer {
  private listener: UnixSocketListener<ConnState> | null = null;

  private constructor(
    readonly path: string,
    private readonly handler: ControlHandler,
    private readonly onError: (msg: string) => void,
  ) {}

  /** Binds the socket; fails when another daemon answers on it. */
  static async listen(
    path: string,
    handler: ControlHandler,
    onError: (msg: string) => void,
  ): Promise<ControlServer> {
    const s = new ControlServer(path, handler, onError);
    await s.bind();
    return s;
  }

  private async bind(): Promise<void> {
    const dir = dirname(this.path);
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (existsSync(this.path)) {
      const st = lstatSync(this.path);
      if (!st.isSocket())
        throw new Fail2tsError("io", "exists and is not a socket: not touching it", this.path);
      let alive = false;
      try {
        await request(this.path, { cmd: "ping" }, 1000);
        alive = true;
      } catch {}
      if (alive)
        throw new Fail2tsError("daemon", "a fail2ts daemon already answers on this socket", this.path);
      unlinkSync(this.path);
    }
    const old = process.umask(0o177);
    try {
      this.listener = Bun.listen<ConnState>({
        unix: this.path,
        socket: {
          open: (sock) => {
            sock.data = { parts: [], size: 0, chain: Promise.resolve(), out: [], closed: false };
          },
          data: (sock, chunk) => this.onData(sock, chunk),
          drain: (sock) => this.flush(sock),
          close: (sock) => {
            sock.data.closed = true;
          },
          error: (sock) => {
            sock.data.closed = true;
          },
        },
      });
    } catch (e) {
      throw new Fail2tsError("io", `cannot listen: ${(e as Error).message}`, this.path);
    } finally {
      process.umask(old);
    }
    chmodSync(this.path, 0o600);
  }

  /**
   * Collects bytes until a newline: only the new chunk is searched (a 4 MB request of 100 k
   * addresses arrives in hundreds of chunks), and a line is decoded once it is complete (a chunk
   * may end inside a multi-byte character).
   */
  private onData(sock: Socket<ConnState>, chunk: Buffer): void {
    const st = sock.data;
    if (st.closed) return;
    let start = 0;
    let nl = chunk.indexOf(10);
    while (nl >= 0) {
      const piece = chunk.subarray(start, nl);
      const bytes = st.parts.length === 0 ? piece : Buffer.concat([...st.parts, piece]);
      st.parts = [];
      st.size = 0;
      const line = bytes.toString("utf8").trim();
      if (line !== "") st.chain = st.chain.then(() => this.answer(sock, line));
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length) {
      // Bun may reuse the chunk's memory after this callback: keep a copy
      st.parts.push(Buffer.from(chunk.subarray(start)));
      st.size += chunk.length - start;
      if (st.size > MAX_LINE) {
        st.parts = [];
        st.size = 0;
        this.send(sock, { ok: false, error: "request too long" });
        sock.end();
        st.closed = true;
      }
    }
  }

  private async answer(sock: Socket<ConnState>, line: string): Promise<void> {
    let reply: Reply;
    let after: (() => void) | null = null;
    try {
      const r = parseRequest(line);
      switch (r.cmd) {
        case "ping":
          reply = { ok: true, result: "pong" };
          break;
        case "status":
          reply = { ok: true, result: this.handler.status(r.jail) };
          break;
        case "ban":
          reply = { ok: true, result: await this.handler.ban(r.jail, r.ips, r.force) };
          break;
        case "unban":
          reply = { ok: true, result: await this.handler.unban(r.all ? "all" : (r.ips ?? []), r.jail) };
          break;
        case "reload":
          reply = { ok: true, result: await this.handler.reload(r.jail) };
          break;
        case "flush":
          reply = { ok: true, result: await this.handler.flush(r.jail) };
          break;
        case "stop":
          reply = { ok: true, result: "stopping" };
          after = () => this.handler.stop();
          break;
      }
    } catch (e) {
      const msg = e instanceof Fail2tsError ? e.describe() : e instanceof Error ? e.message : String(e);
      reply = { ok: false, error: msg };
      if (
        !(e instanceof Fail2tsError) &&
        !(e instanceof Error && /^(not JSON|expected|unknown command|\w+:)/.test(e.message))
      ) {
        this.onError(`control: ${msg}`);
      }
    }
    this.send(sock, reply);
    if (after) setTimeout(after, 0);
  }

  private send(sock: Socket<ConnState>, reply: Reply): void {
    if (sock.data.closed) return;
    sock.data.out.push(Buffer.from(`${JSON.stringify(reply)}\n`));
    this.flush(sock);
  }

  private flush(sock: Socket<ConnState>): void {
    const st = sock.data;
    while (st.out.length > 0 && !st.closed) {
      const s = st.out[0]!;
      const n = sock.write(s);
      if (n < 0) return;
      if (n < s.length) {
        st.out[0] = s.subarray(n);
        return;
      }
      st.out.shift();
    }
  }

  close(): void {
    this.listener?.stop(true);
    this.listener = null;
    try {
      unlinkSync(this.path);
    } catch {}
  }
}
