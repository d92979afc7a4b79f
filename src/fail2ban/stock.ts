import type * as NodeCrypto from "node:crypto";
import { readFileSync } from "node:fs";
import { basename, dirname } from "node:path";

/**
 * Fingerprints (sha256, first 16 hex digits) of the filter files shipped with Fail2ban 1.0.2 (as
 * packaged by Debian). `fail2ts convert` refers to its own built-in filter only when every file a
 * jail's filter reads is one of these, unmodified; an edited filter is converted as it is.
 */
export const STOCK_FILTER_FILES: ReadonlySet<string> = new Set([
  "3proxy.conf:4fc31e96fecb720a",
  "apache-auth.conf:b4be2cf0f3d139d6",
  "apache-badbots.conf:9d9548dc5e7e8128",
  "apache-botsearch.conf:aeb4059d897b8761",
  "apache-common.conf:f754437d6e66255d",
  "apache-fakegooglebot.conf:0d2cb5f1e939df6d",
  "apache-modsecurity.conf:df5c8c719add9b14",
  "apache-nohome.conf:f41a2b46d6fbe59a",
  "apache-noscript.conf:96f6bd77e781eca3",
  "apache-overflows.conf:10570f82138142d5",
  "apache-pass.conf:2cc75b6857332e53",
  "apache-shellshock.conf:62e07f3f0d00540f",
  "assp.conf:9a00dc85b5fa4f13",
  "asterisk.conf:daa12226067c2ec4",
  "bitwarden.conf:0ad9e53669cf0a06",
  "botsearch-common.conf:7bcd2e9bacd42c42",
  "centreon.conf:018491cee0f95962",
  "common.conf:ebf00cecd2c42271",
  "counter-strike.conf:c90a81ff585cc3dd",
  "courier-auth.conf:44627f46ce0eb204",
  "courier-smtp.conf:c92091b56bbc4f11",
  "cyrus-imap.conf:0c3e154f19e5f275",
  "directadmin.conf:6310505afa1b257e",
  "domino-smtp.conf:e492d97810b59eff",
  "dovecot.conf:3f8e1df8bd41e7ac",
  "dropbear.conf:b4921a07ed2e8fe0",
  "drupal-auth.conf:6423a7608985b226",
  "ejabberd-auth.conf:ae2bd94bb6ffae9b",
  "exim-common.conf:77b4155f2e981dfa",
  "exim-spam.conf:de2e781142734efc",
  "exim.conf:9c87158d9c4a8b11",
  "freeswitch.conf:0192c6ff5d368fe6",
  "froxlor-auth.conf:46b15b7e128da16e",
  "gitlab.conf:61a0fbcf10f909da",
  "grafana.conf:88c887a3ca69881f",
  "groupoffice.conf:e70a48cd45205aca",
  "gssftpd.conf:aa18c6abf6701131",
  "guacamole.conf:e7768d0a47fe8289",
  "haproxy-http-auth.conf:be59ed9285c2b43a",
  "horde.conf:593e050f386ec039",
  "kerio.conf:d1644ada338af135",
  "lighttpd-auth.conf:22db233cbb5ef64a",
  "mongodb-auth.conf:9c62527062adb4bd",
  "monit.conf:2fc3cb0a56652c3f",
  "monitorix.conf:1bcf7bdbead3e774",
  "mssql-auth.conf:ee7921b2d5a26f17",
  "murmur.conf:5be9ad2a154764d5",
  "mysqld-auth.conf:22c256bf66446218",
  "nagios.conf:54028279298fb8a6",
  "named-refused.conf:5d7ec914599053b1",
  "nginx-bad-request.conf:7c2c4d42937e2006",
  "nginx-botsearch.conf:b56be847e47c527e",
  "nginx-http-auth.conf:e9284950f8da5509",
  "nginx-limit-req.conf:b070ad89e822ca14",
  "nsd.conf:3ae97b23041cfcd7",
  "openhab.conf:eb11d0ad5a46b144",
  "openwebmail.conf:a3d7d2062da7e94e",
  "oracleims.conf:e7d703f2bcd07378",
  "pam-generic.conf:dd1fb38c2dcd6c40",
  "perdition.conf:10a3efd3e59cf403",
  "php-url-fopen.conf:f1f835d08084c5b1",
  "phpmyadmin-syslog.conf:88d1a1f168c22f0c",
  "portsentry.conf:8493091ae4a04bd3",
  "postfix.conf:dc016f69a10684bb",
  "proftpd.conf:84ea809bef4fcbf6",
  "pure-ftpd.conf:2c777c62463df90f",
  "qmail.conf:9cf71169b33d4ac2",
  "recidive.conf:bb7571cf7dbd633b",
  "roundcube-auth.conf:dcbc44055e4cd4da",
  "scanlogd.conf:a568abcd9ee03665",
  "screensharingd.conf:fa8349d841b51e9b",
  "selinux-common.conf:4fd3cd0af1783329",
  "selinux-ssh.conf:18990a5b8ef3ac71",
  "sendmail-auth.conf:3397bcc06c3a5e20",
  "sendmail-reject.conf:1f2388b6d81c13d8",
  "sieve.conf:0923f00baa1949c2",
  "slapd.conf:6514230b6117ae8f",
  "softethervpn.conf:dd7f150b53321484",
  "sogo-auth.conf:ea7d5477ea944268",
  "solid-pop3d.conf:39c78305a0323130",
  "squid.conf:615f73a840ccca37",
  "squirrelmail.conf:cf80d637f26378a5",
  "sshd.conf:bc1e66be4a49b9e3",
  "stunnel.conf:f2a94cd1de520c81",
  "suhosin.conf:c58dceba554b19ce",
  "tine20.conf:d9c361904cc3d374",
  "traefik-auth.conf:4596e4bd65e2e92c",
  "uwimap-auth.conf:345c783de64def9b",
  "vsftpd.conf:08f8cc1163825aac",
  "webmin-auth.conf:66d047211b65359e",
  "wuftpd.conf:dea72e1c6ce1ae6f",
  "xinetd-fail.conf:861ba75cbae453f9",
  "znc-adminlog.conf:6b130e1d099f37bc",
  "zoneminder.conf:9263e4a34ed78a91",
]);

function sha16(path: string): string {
  // node:crypto is loaded here, not at every start (it pulls in the streams)
  const { createHash } = require("node:crypto") as typeof NodeCrypto;
  return createHash("sha256").update(readFileSync(path)).digest("hex").slice(0, 16);
}

/** Whether every file read for a filter is a stock Fail2ban filter file, unmodified. */
export function isStockFilter(files: readonly string[]): boolean {
  return files.every(
    (f) =>
      basename(dirname(f)) === "filter.d" &&
      f.endsWith(".conf") &&
      STOCK_FILTER_FILES.has(`${basename(f)}:${sha16(f)}`),
  );
}
