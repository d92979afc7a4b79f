/**
 * Historical inputs for `scan`: files, globs, directories, rotated sets, gzip, stdin.
 * A rotated set (auth.log, auth.log.1, auth.log.2.gz) is read oldest first.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { Glob } from "bun";

export interface InputFile {
  /** Path, or "-" for stdin. */
  path: string;
  gzip: boolean;
  /** Bytes on disk (compressed size for .gz; 0 for stdin). */
  size: number;
}

export interface InputProblem {
  path: string;
  message: string;
}

/** "auth.log.2.gz" → { base: "auth.log", n: 2 }; "auth.log" → n: 0; "auth.log-20240101" → dated. */
export function rotationKey(path: string): { base: string; order: number } {
  const name = basename(path).replace(/\.(gz|gzip)$/, "");
  const num = /^(.*)\.(\d+)$/.exec(name);
  if (num) return { base: join(dirname(path), num[1]!), order: Number(num[2]) };
  const dated = /^(.*)-(\d{8,10})$/.exec(name);
  if (dated) return { base: join(dirname(path), dated[1]!), order: 1e12 - Number(dated[2]) };
  return { base: join(dirname(path), name), order: 0 };
}

/** Orders files so that each rotated set is read oldest first; sets keep their first-seen order. */
export function orderRotated(paths: string[]): string[] {
  const groups = new Map<string, string[]>();
  for (const p of paths) {
    const { base } = rotationKey(p);
    const g = groups.get(base);
    if (g) g.push(p);
    else groups.set(base, [p]);
  }
  const out: string[] = [];
  for (const g of groups.values()) {
    g.sort((a, b) => rotationKey(b).order - rotationKey(a).order);
    out.push(...g);
  }
  return out;
}

function isLogName(name: string): boolean {
  return !name.startsWith(".") && !/\.(xz|bz2|zst|journal|sqlite|db)$/.test(name);
}

/** Expands arguments into input files; what cannot be read is reported, not thrown. */
export function expandInputs(args: string[]): { files: InputFile[]; problems: InputProblem[] } {
  const paths: string[] = [];
  const problems: InputProblem[] = [];
  const seen = new Set<string>();
  const add = (p: string) => {
    if (!seen.has(p)) {
      seen.add(p);
      paths.push(p);
    }
  };
  let stdin = false;
  for (const arg of args) {
    if (arg === "-") {
      stdin = true;
      continue;
    }
    if (/[*?[{]/.test(arg) && !existsSync(arg)) {
      const g = new Glob(arg.startsWith("/") ? arg.slice(1) : arg);
      const matches = [
        ...g.scanSync({ cwd: arg.startsWith("/") ? "/" : ".", onlyFiles: true, absolute: false }),
      ]
        .map((m) => (arg.startsWith("/") ? `/${m}` : m))
        .sort();
      if (matches.length === 0) problems.push({ path: arg, message: "no file matches this pattern" });
      for (const m of matches) add(m);
      continue;
    }
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(arg);
    } catch (e) {
      problems.push({
        path: arg,
        message: (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message,
      });
      continue;
    }
    if (st.isDirectory()) {
      const names = readdirSync(arg).filter(isLogName).sort();
      for (const n of names) {
        const p = join(arg, n);
        try {
          if (statSync(p).isFile()) add(p);
        } catch {
          // vanished between readdir and stat
        }
      }
      continue;
    }
    add(arg);
  }
  const files: InputFile[] = [];
  for (const p of orderRotated(paths)) {
    let size = 0;
    try {
      size = statSync(p).size;
    } catch (e) {
      problems.push({ path: p, message: (e as Error).message });
      continue;
    }
    files.push({ path: p, gzip: /\.gz(ip)?$/.test(p), size });
  }
  if (stdin) files.push({ path: "-", gzip: false, size: 0 });
  return { files, problems };
}
