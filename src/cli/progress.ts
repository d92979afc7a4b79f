/** A one-line progress bar on stderr (bytes, rate, ETA), only when stderr is a TTY. */
function human(n: number): string {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

export interface Progress {
  update(done: number, total: number): void;
  end(): void;
}

export function progressBar(label: string, enabled: boolean): Progress {
  if (!enabled) return { update() {}, end() {} };
  const started = performance.now();
  let last = 0;
  let shown = false;
  return {
    update(done, total) {
      const now = performance.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const secs = (now - started) / 1000;
      const rate = done / Math.max(secs, 1e-3);
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      const width = 30;
      const fill = Math.round(frac * width);
      const eta = rate > 0 && total > done ? Math.ceil((total - done) / rate) : 0;
      process.stderr.write(
        `\r${label} [${"#".repeat(fill)}${"-".repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${human(done)}/${human(total)} ${human(rate)}/s ETA ${eta}s\x1b[K`,
      );
      shown = true;
    },
    end() {
      if (shown) process.stderr.write("\r\x1b[K");
    },
  };
}
