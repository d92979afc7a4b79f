/**
 * A minimal SMTP server on 127.0.0.1 for the mail tests (node:net): enough of RFC 5321 for a
 * client to deliver — EHLO/HELO, optional AUTH PLAIN/LOGIN, MAIL, RCPT, DATA (dot-unstuffed),
 * RSET, NOOP, QUIT. Every accepted message is recorded.
 */
import { createServer, type Server, type Socket } from "node:net";

export interface ReceivedMail {
  from: string;
  to: string[];
  /** The message as sent (headers and body), CRLF line ends, dots unstuffed. */
  data: string;
  /** "user:pass" when the client authenticated. */
  auth?: string;
}

export interface SmtpServer {
  port: number;
  messages: ReceivedMail[];
  /** Reply with this code to the next DATA end (e.g. 451 to make the client fail). */
  failNext?: number;
  /** Resolves when `n` messages have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startSmtp(opts: { auth?: boolean } = {}): Promise<SmtpServer> {
  const messages: ReceivedMail[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const sockets = new Set<Socket>();
  const state: SmtpServer = {
    port: 0,
    messages,
    waitFor(n, timeoutMs = 5000) {
      if (messages.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`SMTP: ${messages.length}/${n} messages`)), timeoutMs);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        });
      });
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };

  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.setEncoding("latin1");
    let buf = "";
    let inData = false;
    let data: string[] = [];
    let from = "";
    let to: string[] = [];
    let auth: string | undefined;
    let authStep: "" | "login-user" | "login-pass" | "plain" = "";
    let loginUser = "";
    const say = (line: string) => sock.write(`${line}\r\n`);
    say("220 127.0.0.1 test SMTP ready");

    const command = (line: string) => {
      if (authStep === "plain") {
        const [, user, pass] = Buffer.from(line, "base64").toString().split("\0");
        auth = `${user}:${pass}`;
        authStep = "";
        return say("235 2.7.0 Authentication successful");
      }
      if (authStep === "login-user") {
        loginUser = Buffer.from(line, "base64").toString();
        authStep = "login-pass";
        return say(`334 ${Buffer.from("Password:").toString("base64")}`);
      }
      if (authStep === "login-pass") {
        auth = `${loginUser}:${Buffer.from(line, "base64").toString()}`;
        authStep = "";
        return say("235 2.7.0 Authentication successful");
      }
      const verb = line.slice(0, 4).toUpperCase();
      const arg = line.slice(4).trim();
      switch (verb) {
        case "EHLO":
          sock.write("250-127.0.0.1 hello\r\n250-8BITMIME\r\n");
          if (opts.auth) sock.write("250-AUTH PLAIN LOGIN\r\n");
          return say("250 SMTPUTF8");
        case "HELO":
          return say("250 127.0.0.1 hello");
        case "AUTH": {
          const [mech, initial] = arg.split(" ");
          if (mech?.toUpperCase() === "PLAIN") {
            if (initial) {
              const [, user, pass] = Buffer.from(initial, "base64").toString().split("\0");
              auth = `${user}:${pass}`;
              return say("235 2.7.0 Authentication successful");
            }
            authStep = "plain";
            return say("334 ");
          }
          if (mech?.toUpperCase() === "LOGIN") {
            authStep = "login-user";
            return say(`334 ${Buffer.from("Username:").toString("base64")}`);
          }
          return say("504 unknown mechanism");
        }
        case "MAIL":
          from = /<([^>]*)>/.exec(arg)?.[1] ?? "";
          to = [];
          return say("250 2.1.0 OK");
        case "RCPT":
          to.push(/<([^>]*)>/.exec(arg)?.[1] ?? "");
          return say("250 2.1.5 OK");
        case "DATA":
          inData = true;
          data = [];
          return say("354 end with <CRLF>.<CRLF>");
        case "RSET":
          from = "";
          to = [];
          return say("250 OK");
        case "NOOP":
          return say("250 OK");
        case "QUIT":
          say("221 bye");
          return sock.end();
        default:
          return say("502 not implemented");
      }
    };

    sock.on("data", (chunk: string) => {
      buf += chunk;
      let i = buf.indexOf("\r\n");
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === ".") {
            inData = false;
            if (state.failNext) {
              say(`${state.failNext} try again later`);
              state.failNext = undefined;
            } else {
              const msg: ReceivedMail = { from, to, data: `${data.join("\r\n")}\r\n` };
              if (auth) msg.auth = auth;
              messages.push(msg);
              say("250 2.0.0 queued");
              for (const w of [...waiters]) {
                if (messages.length >= w.n) {
                  waiters.splice(waiters.indexOf(w), 1);
                  w.resolve();
                }
              }
            }
          } else {
            data.push(line.startsWith(".") ? line.slice(1) : line);
          }
        } else {
          command(line);
        }
        i = buf.indexOf("\r\n");
      }
    });
    sock.on("error", () => {});
  });

  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const addr = server.address();
  state.port = typeof addr === "object" && addr ? addr.port : 0;
  return state;
}

/** Splits a message into headers (lower-case names, unfolded) and the decoded text body. */
export function parseMail(data: string): { headers: Map<string, string>; body: string; rawHeaders: string } {
  const normal = data.replace(/\r\n/g, "\n");
  const cut = normal.indexOf("\n\n");
  const rawHeaders = normal.slice(0, cut);
  const headers = new Map<string, string>();
  for (const h of rawHeaders.replace(/\n[ \t]+/g, " ").split("\n")) {
    const c = h.indexOf(":");
    if (c > 0) headers.set(h.slice(0, c).toLowerCase(), h.slice(c + 1).trim());
  }
  let body = normal.slice(cut + 2);
  const cte = (headers.get("content-transfer-encoding") ?? "7bit").toLowerCase();
  if (cte === "quoted-printable") {
    const bytes = body
      .replace(/=\n/g, "")
      .replace(/=([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
    body = Buffer.from(bytes, "latin1").toString("utf8");
  } else if (cte === "base64") {
    body = Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8");
  }
  return { headers, body, rawHeaders };
}

/** RFC 2047 decoding of a header value (=?utf-8?Q?...?= / =?utf-8?B?...?=). */
export function decodeHeader(v: string): string {
  return v.replace(/=\?([^?]+)\?([QqBb])\?([^?]*)\?=\s*/g, (_m, _cs: string, enc: string, text: string) => {
    if (enc.toUpperCase() === "B") return Buffer.from(text, "base64").toString("utf8");
    const bytes = text
      .replace(/_/g, " ")
      .replace(/=([0-9A-F]{2})/gi, (_x, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
    return Buffer.from(bytes, "latin1").toString("utf8");
  });
}
