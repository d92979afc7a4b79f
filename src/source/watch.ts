/**
 * Shared inotify directory watches (fs.watch): one per directory, however many followers need it.
 * A directory watch sees writes to, creation, rename and deletion of the files in it. (File
 * watches are not shared: they follow an inode, which a rotation moves away from the path.)
 */
import { type FSWatcher, watch } from "node:fs";

type Listener = (name: string | null) => void;

interface Entry {
  watcher: FSWatcher;
  listeners: Set<Listener>;
}

const watches = new Map<string, Entry>();

/**
 * Calls `fn(name)` on every event in the directory `path` (name: the entry's name; null when the
 * watch broke). Returns the function that stops listening, or null when the
 * path cannot be watched (it does not exist, or inotify is out of watches).
 */
export function watchDir(path: string, fn: Listener): (() => void) | null {
  let e = watches.get(path);
  if (!e) {
    let watcher: FSWatcher;
    try {
      watcher = watch(path, { persistent: true });
    } catch {
      return null;
    }
    const entry: Entry = { watcher, listeners: new Set() };
    watcher.on("change", (_ev, name) => {
      const n = name === null || name === undefined ? null : String(name);
      for (const l of entry.listeners) l(n);
    });
    watcher.on("error", () => {
      // The watched path went away (directory deleted, file unlinked): drop the watch; the
      // followers' safety poll notices and watches again.
      watches.delete(path);
      try {
        watcher.close();
      } catch {}
      for (const l of entry.listeners) l(null);
    });
    e = entry;
    watches.set(path, e);
  }
  const entry = e;
  entry.listeners.add(fn);
  return () => {
    entry.listeners.delete(fn);
    if (entry.listeners.size === 0 && watches.get(path) === entry) {
      watches.delete(path);
      try {
        entry.watcher.close();
      } catch {}
    }
  };
}

/** How many paths are watched (for tests). */
export function watchCount(): number {
  return watches.size;
}
