/** A deterministic auth.log of our own: sessions, IPv4 and IPv6, helpers, garbage, CRs. */
export function authLog(n: number): string {
  let seed = 7;
  const rnd = (k: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % k;
  };
  const host = () =>
    rnd(5) === 0 ? `2001:db8::${(rnd(400) + 1).toString(16)}` : `198.51.100.${rnd(60) + 1}`;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = 10 + Math.floor(i / 40);
    const date = `Mar ${String(1 + Math.floor(s / 86400)).padStart(2, " ")} ${String(Math.floor(s / 3600) % 24).padStart(2, "0")}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
    const pid = 3000 + rnd(30);
    const ip = host();
    const msg = [
      `Failed password for root from ${ip} port ${rnd(60000)} ssh2`,
      `Failed password for invalid user admin from ${ip} port ${rnd(60000)} ssh2`,
      `Invalid user test from ${ip} port ${rnd(60000)}`,
      `Failed publickey for git from ${ip} port 22 ssh2: ED25519 SHA256:abc`,
      `Accepted publickey for deploy from ${ip} port 22 ssh2`,
      `Connection closed by authenticating user root ${ip} port 22 [preauth]`,
      `Disconnecting: Too many authentication failures [preauth]`,
      `error: maximum authentication attempts exceeded for root from ${ip} port 22 ssh2 [preauth]`,
      `pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=${ip}  user=root`,
      `Received disconnect from ${ip} port 22:11: Bye Bye [preauth]`,
      `Failed password for root from 192.0.2.009 port 22 ssh2`,
      `Failed password for root from ${ip}\r port 22 ssh2`,
      `Failed password for ${"x".repeat(rnd(2) ? 10 : 5000)} from ${ip} port 22 ssh2`,
      `pam_unix(sshd:session): session opened for user deploy`,
    ][rnd(14)]!;
    const kind = rnd(40);
    if (kind === 0) out.push(`garbage ${ip} without a date`);
    else if (kind === 1)
      out.push(`2026-03-01T10:00:${String(s % 60).padStart(2, "0")} gw sshd[${pid}]: ${msg}`);
    else if (kind === 2) out.push("");
    // a CR ends some lines; two CRs leave one in the line (the native engine's prefregex must see it)
    else out.push(`${date} gw sshd[${pid}]: ${msg}${rnd(30) === 0 ? (rnd(2) ? "\r" : "\r\r") : ""}`);
  }
  return `${out.join("\n")}\n`;
}
