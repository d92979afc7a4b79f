/** Picks filters for `scan` from file names and content when none is given. */
import { closeSync, openSync, readSync } from "node:fs";
import { basename } from "node:path";
import type * as Zlib from "node:zlib";
import { builtinFilterNames } from "../filter/index.ts";
import { rotationKey } from "../source/inputs.ts";

interface Rule {
  filter: string;
  name?: RegExp;
  content?: RegExp;
}

const RULES: Rule[] = [
  { filter: "sshd", name: /^(auth\.log|secure|sshd?\.log)$/, content: / sshd(?:-session)?\[\d+\]: / },
  { filter: "postfix", name: /^(mail\.(log|err|warn|info)|maillog)$/, content: / postfix\/\w+\[\d+\]: / },
  { filter: "dovecot", content: / dovecot(?:\[\d+\])?: / },
  { filter: "vsftpd", name: /^vsftpd\.log$/, content: /vsftpd(?:\[\d+\])?: / },
  { filter: "proftpd", content: / proftpd\[\d+\]/ },
  { filter: "pure-ftpd", content: / pure-ftpd(?:\[\d+\])?: / },
  { filter: "exim", name: /^(exim)?main(log)?$/ },
  { filter: "courier-auth", content: / (?:courier-)?(?:imapd|pop3d)(?:-ssl)?(?:\[\d+\])?: LOGIN FAILED/ },
  { filter: "apache-auth", name: /^(apache2?|httpd)?_?error(_log|\.log)$/ },
  {
    filter: "nginx-http-auth",
    content: /\[error\] \d+#\d+: \*\d+ user "[^"]*":? (?:password mismatch|was not found in)/,
  },
  { filter: "recidive", name: /^fail2(ban|ts)\.log$/ },
  { filter: "asterisk", name: /^(full|messages)$/, content: / asterisk\[\d+\]: / },
  { filter: "mysqld-auth", content: /Access denied for user/ },
];

/** The first 64 KiB of a file's text (of its first 256 KiB when gzip), or "" when unreadable. */
function head(path: string): string {
  let fd: number | null = null;
  try {
    fd = openSync(path, "r");
    const buf = Buffer.allocUnsafe(262144);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const got = buf.subarray(0, n);
    // node:zlib loaded when a file is gzip (it costs every other start time)
    const data =
      got[0] === 0x1f && got[1] === 0x8b
        ? (require("node:zlib") as typeof Zlib).gunzipSync(got, { finishFlush: 2 })
        : got;
    return data.subarray(0, 65536).toString("utf8");
  } catch {
    return "";
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** Filters for these files, each with the reason it was chosen. */
export function autoSelect(paths: string[]): Array<{ filter: string; why: string }> {
  const have = new Set(builtinFilterNames());
  const chosen = new Map<string, string>();
  for (const p of paths) {
    if (p === "-") continue;
    const name = basename(rotationKey(p).base);
    const text = head(p);
    for (const r of RULES) {
      if (!have.has(r.filter) || chosen.has(r.filter)) continue;
      if (r.name?.test(name)) chosen.set(r.filter, `file name ${name}`);
      else if (r.content?.test(text)) chosen.set(r.filter, `content of ${p}`);
    }
  }
  return [...chosen].map(([filter, why]) => ({ filter, why }));
}
