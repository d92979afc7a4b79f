/** Picks filters for `scan` from file names and content when none is given. */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { gunzipSync } from "node:zlib";
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

function head(path: string): string {
  try {
    const buf = readFileSync(path).subarray(0, 262144);
    const data = buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf, { finishFlush: 2 }) : buf;
    return data.subarray(0, 65536).toString("utf8");
  } catch {
    return "";
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
