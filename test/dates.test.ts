import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  createDateDetector,
  type DateDetectorOptions,
  type DateMatch,
  utcZone,
} from "../src/filter/dates.ts";
import { Fail2tsError } from "../src/util/errors.ts";

// Expected values are computed here from calendar fields with Date.UTC and hand-written zone
// offsets (Europe/Zurich: CET = UTC+1, CEST = UTC+2), not with the code under test.
const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) =>
  Date.UTC(y, mo - 1, d, h, mi, s) / 1000;
const cet = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) => utc(y, mo, d, h, mi, s) - 3600;
const cest = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) => utc(y, mo, d, h, mi, s) - 7200;

/** 2005-08-14 12:00:00 CEST, the "now" of Fail2ban's sample tests */
const NOW = 1124013600;

function detector(opts: DateDetectorOptions = {}) {
  return createDateDetector({ now: () => NOW, ...opts });
}

/** match() and a copy of its result (the detector reuses the object) */
function find(line: string, opts: DateDetectorOptions = {}): DateMatch | null {
  const m = detector(opts).match(line);
  return m && { ...m };
}

/** The date text and time found in `line`. */
function date(line: string, opts: DateDetectorOptions = {}): [string, number] | null {
  const m = find(line, opts);
  return m && [line.slice(m.start, m.end), m.time];
}

const UTC = { logtimezone: "UTC" };

let savedTz: string | undefined;
beforeAll(() => {
  savedTz = process.env.TZ;
  process.env.TZ = "Europe/Zurich";
});
afterAll(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

describe("default templates: one format each", () => {
  test("syslog without year takes now's year", () => {
    expect(date("Jan 23 21:59:59 host sshd[42]: Failed password", UTC)).toEqual([
      "Jan 23 21:59:59",
      utc(2005, 1, 23, 21, 59, 59),
    ]);
    expect(date("Aug  4 07:08:09 host app: x", UTC)).toEqual(["Aug  4 07:08:09", utc(2005, 8, 4, 7, 8, 9)]);
  });

  test("syslog with weekday, fraction and year", () => {
    expect(date("Sun Jan 23 21:59:59.011 2005 x", UTC)).toEqual([
      "Sun Jan 23 21:59:59.011 2005",
      utc(2005, 1, 23, 21, 59, 59),
    ]);
    expect(date("Jan 23 2005 21:59:59 x", UTC)).toEqual([
      "Jan 23 2005 21:59:59",
      utc(2005, 1, 23, 21, 59, 59),
    ]);
    expect(date("[Mon Jul 22 08:15:03.120045 2013] [core:error] x", UTC)).toEqual([
      "Mon Jul 22 08:15:03.120045 2013",
      utc(2013, 7, 22, 8, 15, 3),
    ]);
  });

  test("month names are case-insensitive", () => {
    expect(date("sun jan 23 21:59:59 2005 x", UTC)?.[1]).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(date("JAN 23 2005 21:59:59 x", UTC)?.[1]).toBe(utc(2005, 1, 23, 21, 59, 59));
  });

  test("ISO 8601 with fraction and zones", () => {
    expect(date("2005-01-23T21:59:59.981746+01:00 host x", UTC)).toEqual([
      "2005-01-23T21:59:59.981746+01:00",
      utc(2005, 1, 23, 20, 59, 59),
    ]);
    expect(date("2005-01-23T21:59:59Z x")).toEqual(["2005-01-23T21:59:59Z", utc(2005, 1, 23, 21, 59, 59)]);
    expect(date("2005-01-23 21:59:59,123 -0700 x")).toEqual([
      "2005-01-23 21:59:59,123 -0700",
      utc(2005, 1, 24, 4, 59, 59),
    ]);
    expect(date("2005-01-23 21:59:59 UTC x")?.[1]).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(date("2005-01-23T21:59:59+05 x")?.[1]).toBe(utc(2005, 1, 23, 16, 59, 59));
    expect(date("2005-01-23  8:59:59 x", UTC)).toEqual(["2005-01-23  8:59:59", utc(2005, 1, 23, 8, 59, 59)]);
    expect(date("2005/01/23 21:59:59 x", UTC)?.[1]).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(date("2006.12.22 07:44:21 syslog-ng", UTC)?.[1]).toBe(utc(2006, 12, 22, 7, 44, 21));
  });

  test("ISO 8601 without separators", () => {
    expect(date("20050123T215959 x", UTC)).toEqual(["20050123T215959", utc(2005, 1, 23, 21, 59, 59)]);
    expect(date("20050123 215959.5+0100 x", UTC)?.[1]).toBe(utc(2005, 1, 23, 20, 59, 59));
  });

  test("Apache: the brackets are not part of the date", () => {
    const line = '192.0.2.7 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326';
    const m = find(line);
    expect(m && line.slice(m.start, m.end)).toBe("10/Oct/2000:13:55:36 -0700");
    expect(m?.time).toBe(utc(2000, 10, 10, 20, 55, 36));
    expect(m?.template).toBe(
      "Day(?P<_sep>[-/])MON(?P=_sep)ExYear[ :]?24hour:Minute:Second(?:\\.Microseconds)?(?: Zone offset)?",
    );
    expect(date("27-Jul-2007 16:21:53.253 named x", UTC)?.[1]).toBe(utc(2007, 7, 27, 16, 21, 53));
    expect(date("[26-Jul-2007 15:20:52 +0200]: roundcube", UTC)).toEqual([
      "26-Jul-2007 15:20:52 +0200",
      utc(2007, 7, 26, 13, 20, 52),
    ]);
  });

  test("day/month/year with 4 or 2 digit years (two digits are 20xx)", () => {
    expect(date("23/01/2005 21:59:59 x11vnc", UTC)?.[1]).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(date("23/01/05 21:59:59 x", UTC)?.[1]).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(date("17-07-2008 17:23:25 x", UTC)?.[1]).toBe(utc(2008, 7, 17, 17, 23, 25));
    expect(date("23/01/99 21:59:59 x", UTC)?.[1]).toBe(utc(2099, 1, 23, 21, 59, 59));
  });

  test("month/day/year forms", () => {
    expect(date("05/21/2008:03:14:15 cpanel", UTC)?.[1]).toBe(utc(2008, 5, 21, 3, 14, 15));
    expect(date("01-27-2012 16:22:44.252 x", UTC)?.[1]).toBe(utc(2012, 1, 27, 16, 22, 44));
    expect(date("<09/17/08@06:04:31> x", UTC)).toEqual(["<09/17/08@06:04:31>", utc(2008, 9, 17, 6, 4, 31)]);
  });

  test("MySQL 130324 09:12:44", () => {
    expect(date("130324 09:12:44 x", UTC)?.[1]).toBe(utc(2013, 3, 24, 9, 12, 44));
    expect(date("050123  8:59:59 x", UTC)?.[1]).toBe(utc(2005, 1, 23, 8, 59, 59));
  });

  test("ASSP Apr-28-13 11:42:17", () => {
    expect(date("Apr-28-13 11:42:17 [Worker_1] x", UTC)).toEqual([
      "Apr-28-13 11:42:17",
      utc(2013, 4, 28, 11, 42, 17),
    ]);
  });

  test("Tomcat with AM/PM", () => {
    expect(date("Jan 23, 2005 9:59:59 PM org.x", UTC)?.[1]).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(date("Jan 23, 2005 12:00:00 AM x", UTC)?.[1]).toBe(utc(2005, 1, 23, 0, 0, 0));
    expect(date("jan 23, 2005 12:30:00 pm x", UTC)?.[1]).toBe(utc(2005, 1, 23, 12, 30, 0));
  });

  test("zone names and offsets in front of syslog dates", () => {
    expect(date("PDT Apr 17 22:06:30 monit x")).toEqual(["PDT Apr 17 22:06:30", utc(2005, 4, 18, 5, 6, 30)]);
    expect(date("[CEST Aug  4 10:00:00] x")?.[1]).toBe(utc(2005, 8, 4, 8, 0, 0));
    expect(date("+0200 Jan 23 21:59:59 2005 x")?.[1]).toBe(utc(2005, 1, 23, 19, 59, 59));
  });

  test("epoch seconds: at line start, in brackets, in audit(...)", () => {
    expect(date("1106513999 x")).toEqual(["1106513999", 1106513999]);
    expect(date("1106513999.250    12 192.0.2.1 TCP_DENIED/403")).toEqual(["1106513999.250", 1106513999.25]);
    expect(date("[1106513999] nsd[1]: x")).toEqual(["1106513999", 1106513999]);
    expect(date("type=USER_LOGIN msg=audit(1106513999.123:456): user pid=1")).toEqual([
      "1106513999.123",
      1106513999.123,
    ]);
    // nowhere else, and not a longer number
    expect(find("pid 1106513999 x")).toBeNull();
    expect(find("1106513999123 x")).toBeNull();
  });

  test("LEPOCH: milliseconds and microseconds", () => {
    expect(date("1106513999123 x", { datepattern: "LEPOCH" })).toEqual(["1106513999123", 1106513999.123]);
    expect(date("1106513999123456 x", { datepattern: "LEPOCH" })).toEqual([
      "1106513999123456",
      1106513999.123456,
    ]);
    expect(date("1106513999 x", { datepattern: "{^LN-BEG}LEPOCH" })?.[1]).toBe(1106513999);
  });

  test("TAI64N", () => {
    expect(date("@4000000041f4104f00000000 dovecot: x")).toEqual(["@4000000041f4104f00000000", 0x41f4104f]);
    expect(date("x @4000000041f4104f2ef02e94 y")?.[1]).toBe(0x41f4104f);
  });

  test("time only: today, or yesterday when it would be in the future", () => {
    expect(date("11:00:00 x", UTC)).toEqual(["11:00:00", utc(2005, 8, 14, 11, 0, 0)]);
    expect(date("21:59:59 x", UTC)).toEqual(["21:59:59", utc(2005, 8, 13, 21, 59, 59)]);
  });

  test("the first two non-word characters may precede a line-start date", () => {
    expect(find("[2005-01-23 21:59:59] x", UTC)?.start).toBe(1);
    expect(find("<[2005-01-23 21:59:59] x", UTC)?.start).toBe(2);
  });

  test("no date", () => {
    expect(find("srv sshd[42]: Connection closed by 192.0.2.1 port 22")).toBeNull();
    expect(find("")).toBeNull();
  });

  test("an invalid date is found, with time NaN", () => {
    const m = find("2005-02-30 10:00:00 x");
    expect(m?.start).toBe(0);
    expect(m?.end).toBe(19);
    expect(m?.time).toBeNaN();
    expect(find("Jan 23 25:00:00 x")?.time).toBeNaN();
    expect(find("Jan 23 21:59:60 x")?.time).toBeNaN();
    // %Z takes any 3-5 letters in a case-insensitive template; Fail2ban cannot read them
    expect(find("error Jan 23 10:00:00 x")?.time).toBeNaN();
  });
});

describe("template order", () => {
  test("a date at the line start wins over an earlier template further right", () => {
    // the ISO template comes first, but the syslog date is at the line start
    expect(date("Jan 23 21:59:59 host app: 2006-02-03 04:05:06", UTC)?.[0]).toBe("Jan 23 21:59:59");
  });

  test("otherwise the leftmost date wins", () => {
    expect(date("host app: Jan 23 21:59:59 x 2006-02-03 04:05:06", UTC)?.[0]).toBe("Jan 23 21:59:59");
    // the optional year of the syslog template takes a year that follows
    expect(date("host app: Jan 23 21:59:59 2006-02-03 04:05:06", UTC)?.[0]).toBe("Jan 23 21:59:59 2006");
    expect(date("host app: 2006-02-03 04:05:06 Jan 23 21:59:59", UTC)?.[0]).toBe("2006-02-03 04:05:06");
  });

  test("word boundaries: a date glued to a word is not one (Python's Unicode \\w)", () => {
    expect(find("x2005-01-23 21:59:59 y")).toBeNull();
    expect(find("é2005-01-23 21:59:59 y")).toBeNull();
    expect(find("«2005-01-23 21:59:59» y", UTC)?.start).toBe(1);
    expect(find("a: 2005-01-23 21:59:59é", UTC)).toBeNull();
  });

  test("one detector gives the same answers as fresh ones, whatever came before", () => {
    const lines = [
      "Jan 23 21:59:59 host sshd[1]: x",
      "2005-01-23T21:59:59 host y",
      "192.0.2.1 - - [23/Jan/2005:21:59:59 +0100] GET",
      "[Sun Jan 23 21:59:59.100 2005] [error]",
      "no date here",
      "Jan 23 21:59:59 host app: 2006-02-03 04:05:06",
      "1106513999 x",
      "«2005-01-23 21:59:59» é",
      "x 21:59:59",
      "21:59:59 x",
      "@4000000041f4104f00000000 x",
      "Jan 24 00:00:00 host x",
    ];
    for (const opts of [
      {},
      { datepattern: "{^LN-BEG}" },
      { datepattern: "^[^\\[]*\\[({DATE})\n{^LN-BEG}" },
    ]) {
      const one = detector(opts);
      for (let round = 0; round < 3; round++) {
        for (const line of lines) {
          const a = one.match(line);
          expect(a && { ...a }).toEqual(find(line, opts));
        }
        lines.reverse();
      }
    }
  });
});

describe("year inference", () => {
  // now: 2005-01-01 00:30:00 UTC
  const newYear = { logtimezone: "UTC", now: () => utc(2005, 1, 1, 0, 30, 0) };

  test("a date in the future belongs to the year before", () => {
    expect(date("Dec 31 23:59:59 x", newYear)?.[1]).toBe(utc(2004, 12, 31, 23, 59, 59));
    expect(date("Jan  1 00:10:00 x", newYear)?.[1]).toBe(utc(2005, 1, 1, 0, 10, 0));
  });

  test("up to one day ahead is still this year", () => {
    // Fail2ban compares with now as a local wall time: 2005-01-01 01:30 in Zurich
    expect(date("Jan  2 01:29:00 x", newYear)?.[1]).toBe(utc(2005, 1, 2, 1, 29, 0));
    expect(date("Jan  2 01:31:00 x", newYear)?.[1]).toBe(utc(2004, 1, 2, 1, 31, 0));
  });

  test("Feb 29 exists only in leap years", () => {
    expect(date("Feb 29 10:00:00 x", { logtimezone: "UTC", now: () => utc(2004, 3, 1) })?.[1]).toBe(
      utc(2004, 2, 29, 10, 0, 0),
    );
    expect(date("Feb 29 10:00:00 x", { logtimezone: "UTC", now: () => utc(2005, 3, 1) })?.[1]).toBeNaN();
  });

  test("now's year is the local one", () => {
    // 2004-12-31 23:30 UTC is already 2005 in Zurich
    const now = () => utc(2004, 12, 31, 23, 30, 0);
    expect(date("Jan  1 00:15:00 x", { now })?.[1]).toBe(cet(2005, 1, 1, 0, 15, 0));
  });
});

describe("local time (TZ=Europe/Zurich)", () => {
  test("winter and summer offsets", () => {
    expect(date("2005-01-23 21:59:59 x")?.[1]).toBe(cet(2005, 1, 23, 21, 59, 59));
    expect(date("2005-07-23 21:59:59 x")?.[1]).toBe(cest(2005, 7, 23, 21, 59, 59));
  });

  test("DST starts: 02:00 CET jumps to 03:00 CEST", () => {
    const dd = detector();
    const t = (line: string) => dd.match(line)?.time;
    expect(t("2005-03-27 01:59:59 x")).toBe(cet(2005, 3, 27, 1, 59, 59));
    expect(t("2005-03-27 03:00:00 x")).toBe(cest(2005, 3, 27, 3, 0, 0));
    // a time that does not exist is read with the offset before the change (as mktime does)
    expect(t("2005-03-27 02:30:00 x")).toBe(cet(2005, 3, 27, 2, 30, 0));
    expect(t("2005-03-27 01:59:59 x")).toBe(cet(2005, 3, 27, 1, 59, 59));
  });

  test("DST ends: 03:00 CEST goes back to 02:00 CET", () => {
    const dd = detector();
    const t = (line: string) => dd.match(line)?.time;
    expect(t("2005-10-30 01:59:59 x")).toBe(cest(2005, 10, 30, 1, 59, 59));
    // the hour that happens twice is taken the first time (summer time), as in a log read in order
    expect(t("2005-10-30 02:30:00 x")).toBe(cest(2005, 10, 30, 2, 30, 0));
    expect(t("2005-10-30 03:00:00 x")).toBe(cet(2005, 10, 30, 3, 0, 0));
    expect(t("2005-10-30 01:00:00 x")).toBe(cest(2005, 10, 30, 1, 0, 0));
  });

  test("logtimezone replaces the local zone for dates without one", () => {
    expect(date("2005-07-23 21:59:59 x", { logtimezone: "UTC+0200" })?.[1]).toBe(
      utc(2005, 7, 23, 19, 59, 59),
    );
    expect(date("2005-07-23 21:59:59 x", { logtimezone: "UTC-07:00" })?.[1]).toBe(
      utc(2005, 7, 24, 4, 59, 59),
    );
    expect(date("2005-07-23 21:59:59 x", { logtimezone: "+0530" })?.[1]).toBe(utc(2005, 7, 23, 16, 29, 59));
    expect(date("2005-07-23 21:59:59 x", { logtimezone: "CET" })?.[1]).toBe(utc(2005, 7, 23, 20, 59, 59));
    // a zone in the text wins
    expect(date("2005-07-23 21:59:59 +0100 x", { logtimezone: "UTC-07:00" })?.[1]).toBe(
      utc(2005, 7, 23, 20, 59, 59),
    );
  });
});

describe("datepattern", () => {
  test("{NONE}: no date", () => {
    const dd = detector({ datepattern: "{NONE}" });
    expect(dd.none).toBe(true);
    expect(dd.match("2005-01-23 21:59:59 x")).toBeNull();
    expect(detector().none).toBe(false);
  });

  test("^ anchors at the line start, without the two-character slack", () => {
    const opts = { datepattern: "^%Y-%m-%d %H:%M:%S", logtimezone: "UTC" };
    expect(date("2005-01-23 21:59:59 x", opts)?.[1]).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(find("[2005-01-23 21:59:59] x", opts)).toBeNull();
    expect(find("x 2005-01-23 21:59:59", opts)).toBeNull();
  });

  test("{^LN-BEG} allows up to two non-word characters first", () => {
    const opts = { datepattern: "{^LN-BEG}%Y-%m-%d %H:%M:%S", logtimezone: "UTC" };
    const m = find("[2005-01-23 21:59:59] x", opts);
    expect(m?.start).toBe(1);
    expect(m?.template).toBe("{^LN-BEG}Year-Month-Day 24hour:Minute:Second");
    expect(find("x 2005-01-23 21:59:59", opts)).toBeNull();
  });

  test("unanchored patterns need word boundaries, unless {UNB} or **", () => {
    expect(date("at 2005-01-23 21:59:59.", { datepattern: "%Y-%m-%d %H:%M:%S" })?.[0]).toBe(
      "2005-01-23 21:59:59",
    );
    expect(find("x21:59:59y", { datepattern: "%H:%M:%S" })).toBeNull();
    expect(date("x21:59:59y", { datepattern: "{UNB}%H:%M:%S" })?.[0]).toBe("21:59:59");
    expect(date("x21:59:59y", { datepattern: "**%H:%M:%S**" })?.[0]).toBe("21:59:59");
  });

  test("group 1 is the date; the rest of the match is context", () => {
    const opts = { datepattern: "^t=(%Y-%m-%dT%H:%M:%S%z)", logtimezone: "UTC" };
    expect(date("t=2005-01-23T21:59:59+0100 lvl=eror", opts)).toEqual([
      "2005-01-23T21:59:59+0100",
      utc(2005, 1, 23, 20, 59, 59),
    ]);
    // without a group the whole pattern is the date
    expect(date("L 23/01/2005 - 21:59:59: x", { datepattern: "^L %d/%m/%Y - %H:%M:%S", ...UTC })?.[0]).toBe(
      "L 23/01/2005 - 21:59:59",
    );
  });

  test("an empty group: no date text, time NaN", () => {
    const opts = { datepattern: "^%b %d, %ExY %I:%M:%S %p\n^WARNING:()**\n{^LN-BEG}" };
    const m = find("WARNING: login attempt from 192.0.2.1 failed", opts);
    expect(m && [m.start, m.end]).toEqual([8, 8]);
    expect(m?.time).toBeNaN();
    expect(date("Jan 23, 2005 9:59:59 PM x", { ...opts, ...UTC })?.[1]).toBe(utc(2005, 1, 23, 21, 59, 59));
  });

  test("{DATE} puts every default template in place", () => {
    const opts = { datepattern: "^[^\\[]*\\[({DATE})\n{^LN-BEG}", logtimezone: "UTC" };
    expect(date('192.0.2.1 - - [23/Jan/2005:21:59:59 +0100] "GET /"', opts)).toEqual([
      "23/Jan/2005:21:59:59 +0100",
      utc(2005, 1, 23, 20, 59, 59),
    ]);
    expect(date("Jan 23 21:59:59 host x", opts)?.[1]).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(date("<W>2005-01-23 21:59:59.818 1 => x", { datepattern: "^<W>{DATE}", ...UTC })?.[0]).toBe(
      "<W>2005-01-23 21:59:59.818",
    );
  });

  test("several patterns are tried in order", () => {
    const opts = { datepattern: "{^LN-BEG}Epoch\n{^LN-BEG}", logtimezone: "UTC" };
    expect(date("[1106513999] nsd[1]: x", opts)?.[1]).toBe(1106513999);
    expect(date("Jan 23 21:59:59 host x", opts)?.[1]).toBe(utc(2005, 1, 23, 21, 59, 59));
  });

  test("{EPOCH} inside a pattern", () => {
    expect(date("ts=[1106513999] x", { datepattern: "^ts=\\[{EPOCH}\\]" })).toEqual([
      "ts=[1106513999]",
      1106513999,
    ]);
  });

  test("%% is a literal percent sign", () => {
    const opts = { datepattern: "^\\d+%% %Y-%m-%d %H:%M:%S", logtimezone: "UTC" };
    expect(date("50% 2005-01-23 21:59:59 x", opts)).toEqual([
      "50% 2005-01-23 21:59:59",
      utc(2005, 1, 23, 21, 59, 59),
    ]);
  });

  test("other directives", () => {
    const u = (datepattern: string, line: string) => date(line, { datepattern, logtimezone: "UTC" })?.[1];
    expect(u("%A, %B %d %Y %H:%M", "Sunday, January 23 2005 21:59 x")).toBe(utc(2005, 1, 23, 21, 59));
    expect(u("%Y %j %H:%M:%S", "2005 023 21:59:59 x")).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(u("%c", "Sun Jan 23 21:59:59 2005 x")).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(u("%x %X", "01/23/05 21:59:59 x")).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(u("^%s", "1106513999 x")).toBe(1106513999);
    expect(u("%d.%m.%Y %H:%M:%S %Z", "23.01.2005 21:59:59 EST x")).toBe(utc(2005, 1, 24, 2, 59, 59));
    expect(u("%d.%m.%Y %H:%M:%S %Exz", "23.01.2005 21:59:59 CET+0100 x")).toBe(utc(2005, 1, 23, 19, 59, 59));
    expect(u("%ExY%Exm%Exd-%ExH%ExM%ExS", "20050123-215959 x")).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(u("%m-%d %I:%M:%S %p", "01-23 09:59:59 PM x")).toBe(utc(2005, 1, 23, 21, 59, 59));
  });
});

describe("errors", () => {
  const bad = (opts: DateDetectorOptions) => {
    try {
      createDateDetector(opts);
    } catch (err) {
      return err instanceof Fail2tsError ? err.code : `not a Fail2tsError: ${err}`;
    }
    return "no error";
  };

  test("a bad datepattern is a config error", () => {
    expect(bad({ datepattern: "%Y-%q" })).toBe("config"); // unknown directive
    expect(bad({ datepattern: "%Y 100%" })).toBe("config"); // lone percent
    expect(bad({ datepattern: "(%Y-%m" })).toBe("config"); // unbalanced
    expect(bad({ datepattern: "%Y-%m-%d %Y" })).toBe("config"); // twice the same group
    expect(bad({ datepattern: "%l:%M:%S" })).toBe("config"); // Fail2ban builds "(?(?P<I>..." from it
    expect(bad({ datepattern: "(?x)%Y" })).toBe("config");
    expect(bad({ datepattern: "%Y\n%Y" })).toBe("config"); // the same template twice
  });

  test("a bad logtimezone is a config error", () => {
    expect(bad({ logtimezone: "Europe/Paris" })).toBe("config");
    expect(bad({ logtimezone: "XYZ" })).toBe("config");
    expect(bad({ logtimezone: "UTC+0200" })).toBe("no error");
  });
});

describe("a UTC process zone is told without the zone database", () => {
  const inZone = <T>(tz: string, f: () => T): T => {
    const saved = process.env.TZ;
    process.env.TZ = tz;
    try {
      return f();
    } finally {
      process.env.TZ = saved;
    }
  };

  test("TZ names that are UTC, and only those", () => {
    for (const tz of ["UTC", ":UTC", "Etc/UTC", "Universal", "Zulu"]) expect(inZone(tz, utcZone)).toBe(true);
    for (const tz of ["Europe/Zurich", "", "UTC0", "Etc/GMT+1", "posix/Etc/UTC", "utc"])
      expect(inZone(tz, utcZone)).toBe(false);
  });

  test("local dates read in a UTC zone are those ICU gives for a zone of offset 0", () => {
    const lines = [
      "Jan 23 21:59:59 host sshd[42]: x",
      "Dec 31 23:59:59 host x",
      "2005-03-27 02:30:00 x",
      "2005-10-30 02:30:00.250 x",
      "2009-12-31 23:59:59 x",
      "[23/Jan/2005:21:59:59] x",
    ];
    // Etc/GMT is offset 0 too but not in the list: it goes through ICU, the reference here
    const read = (tz: string) => inZone(tz, () => lines.map((l) => find(l)?.time ?? null));
    const viaIcu = read("Etc/GMT");
    expect(viaIcu.every((t) => t !== null)).toBe(true);
    expect(read("UTC")).toEqual(viaIcu);
    expect(read(":Etc/UTC")).toEqual(viaIcu);
    expect(viaIcu[0]).toBe(utc(2005, 1, 23, 21, 59, 59));
    expect(viaIcu[4]).toBe(utc(2009, 12, 31, 23, 59, 59));
    // and a zone with daylight saving is still read as such
    expect(inZone("Europe/Zurich", () => find(lines[0]!)?.time)).toBe(cet(2005, 1, 23, 21, 59, 59));
  });
});

describe("a syslog date is read without building the whole template list", () => {
  // Sets are cached by year and datepattern: each case takes years of its own, one read
  // quickly (a syslog line first), one with the whole list built first.
  let year = 2030;
  for (const datepattern of [
    undefined,
    "{^LN-BEG}",
    "{DEFAULT}",
    "{^LN-BEG}\n%d/%m/%Y %H:%M:%S",
    "",
    " \n{default}",
    "%b %d %H:%M:%S\n{^LN-BEG}",
  ])
    test(`datepattern ${JSON.stringify(datepattern)}`, () => {
      const at = (y: number) => Date.UTC(y, 5, 1) / 1000;
      const quick = createDateDetector({ now: () => at(year++), datepattern, ...UTC });
      const full = createDateDetector({ now: () => at(year++), datepattern, ...UTC });
      full.prepare(); // builds the whole list (its regexes) before any syslog date is read
      const line = "Jan 23 21:59:59 host sshd[42]: x";
      const a = quick.match(line);
      const b = full.match(line);
      expect(a && { ...a, time: 0 }).toEqual(b && { ...b, time: 0 });
      // a pattern of its own first: it answers, not the defaults' syslog template
      if (datepattern?.startsWith("%")) expect(a?.template).not.toStartWith("{^LN-BEG}");
      else expect(a?.template).toStartWith("{^LN-BEG}");
    });
});
