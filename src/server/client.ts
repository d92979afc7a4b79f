/** The client side of the control socket: one request, one reply. */
import { Fail2tsError } from "../util/errors.ts";
import type { Request } from "./protocol.ts";

/** Why the daemon could not be reached: no socket, nobody listening, no permission. */
export class DaemonUnreachable extends Fail2tsError {
  constructor(
    readonly socket: string,
    readonly reason: "missing" | "refused" | "denied" | "timeout" | "other",
    message: string,
  ) {
    super("daemon", message, socket);
    this.name = "DaemonUnreachable";
  }
}

/**
 * Sends one request to the daemon at `socket` and returns its `result`; throws
 * DaemonUnreachable when there is no daemon, Fail2tsError("daemon") when it answers an error.
 */
export function request(socket: string, req: Request, timeoutMs = 10000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let buf = "";
    let done = false;
    const finish = (err: Error | null, value?: unknown) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(value);
    };
    let out = Buffer.from(`${JSON.stringify(req)}\n`);
    const flushOut = (s: { write(b: Uint8Array): number }) => {
      while (out.length > 0) {
        const n = s.write(out);
        if (n <= 0) return;
        out = out.subarray(n);
      }
    };
    const timer = setTimeout(
      () => finish(new DaemonUnreachable(socket, "timeout", `no answer within ${timeoutMs / 1000}s`)),
      timeoutMs,
    );
    Bun.connect({
      unix: socket,
      socket: {
        // A large request (a ban of 20,000 addresses) does not fit the socket buffer at once:
        // write what goes, and the rest on drain.
        open(s) {
          flushOut(s);
        },
        drain(s) {
          flushOut(s);
        },
        data(s, chunk) {
          buf += chunk.toString("utf8");
          const nl = buf.indexOf("\n");
          if (nl < 0) return;
          let reply: { ok?: boolean; result?: unknown; error?: string };
          try {
            reply = JSON.parse(buf.slice(0, nl));
          } catch {
            finish(new Fail2tsError("daemon", "the daemon answered something that is not JSON", socket));
            s.end();
            return;
          }
          if (reply.ok) finish(null, reply.result);
          else finish(new Fail2tsError("daemon", reply.error ?? "error", socket));
          s.end();
        },
        close() {
          finish(new Fail2tsError("daemon", "the daemon closed the connection without answering", socket));
        },
        error(_s, e) {
          finish(new DaemonUnreachable(socket, "other", e.message));
        },
        connectError(_s, e) {
          finish(unreachable(socket, e));
        },
      },
    }).catch((e: Error) => finish(unreachable(socket, e)));
  });
}

function unreachable(socket: string, e: Error): DaemonUnreachable {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENOENT")
    return new DaemonUnreachable(socket, "missing", "no daemon (the socket does not exist)");
  if (code === "ECONNREFUSED")
    return new DaemonUnreachable(socket, "refused", "no daemon listening on the socket");
  if (code === "EACCES" || code === "EPERM") {
    return new DaemonUnreachable(socket, "denied", "permission denied (the control socket is for root)");
  }
  return new DaemonUnreachable(socket, "other", e.message);
}
