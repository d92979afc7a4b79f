/**
 * Python's conditional groups `(?(name)yes|no)` rewritten without them, for JavaScript (Debian's
 * sshd.conf uses two). The regex is split in two copies joined by `|`: one where group `name`
 * must take part (the condition reads `yes`), one where it cannot (it reads `no`). Duplicate
 * group names in separate alternatives are legal in JavaScript. Fail2ban's `<F-NAME>` tags are
 * groups here too, so they are turned into `(?P<name>…)` in the regexes this rewrites.
 */
import { tagToGroup } from "../filter/tags.ts";
import { Fail2tsError } from "../util/errors.ts";

interface TextItem {
  kind: "text";
  s: string;
  quant: string;
}

interface GroupItem {
  kind: "group";
  /** `(?:`, `(?P<x>`, `(`, `(?=`, `(?(x)` ... */
  open: string;
  /** Capture name, for named groups. */
  name?: string;
  /** Condition name, for `(?(name)…)`. */
  cond?: string;
  branches: Item[][];
  quant: string;
}

type Item = TextItem | GroupItem;
type Path = number[];

const QUANT = /^(?:[*+?]|\{\d*(?:,\d*)?\})[?+]?/;
const FTAG = /^<(\/?)F-([A-Z0-9_-]+)>/;

function parse(re: string): Item[][] {
  let i = 0;
  const openTags: string[] = [];
  const parseAlt = (inTag: string | null): Item[][] => {
    const branches: Item[][] = [[]];
    const cur = () => branches[branches.length - 1]!;
    const push = (item: Item) => {
      const q = QUANT.exec(re.slice(i));
      if (q && !(q[0].startsWith("{") && !/^\{(?:\d+(?:,\d*)?|,\d+)\}/.test(q[0]))) {
        item.quant = q[0];
        i += q[0].length;
      }
      cur().push(item);
    };
    while (i < re.length) {
      const c = re[i]!;
      if (c === "\\") {
        i += 2;
        push({ kind: "text", s: re.slice(i - 2, i), quant: "" });
        continue;
      }
      if (c === "[") {
        let j = i + 1;
        if (re[j] === "^") j++;
        if (re[j] === "]") j++;
        while (j < re.length && re[j] !== "]") j += re[j] === "\\" ? 2 : 1;
        const s = re.slice(i, j + 1);
        i = j + 1;
        push({ kind: "text", s, quant: "" });
        continue;
      }
      if (c === "|") {
        branches.push([]);
        i++;
        continue;
      }
      if (c === ")") {
        if (inTag !== null) throw new Error(`) inside <F-${inTag}>`);
        return branches;
      }
      if (c === "<") {
        const t = FTAG.exec(re.slice(i));
        if (t && !t[1]) {
          i += t[0].length;
          openTags.push(t[2]!);
          const body = parseAlt(t[2]!);
          const name = tagToGroup(t[2]!);
          push({ kind: "group", open: `(?P<${name}>`, name, branches: body, quant: "" });
          continue;
        }
        if (t?.[1] && inTag === t[2]) {
          i += t[0].length;
          return branches;
        }
      }
      if (c === "(") {
        const rest = re.slice(i);
        let m: RegExpExecArray | null;
        if ((m = /^\(\?(?:P=\w+|#[^)]*|[aiLmsux]+)\)/.exec(rest))) {
          i += m[0].length;
          push({ kind: "text", s: m[0], quant: "" });
          continue;
        }
        let open: string;
        let name: string | undefined;
        let cond: string | undefined;
        if ((m = /^\(\?P?<(\w+)>/.exec(rest))) {
          open = m[0];
          name = m[1];
        } else if ((m = /^\(\?\((\w+)\)/.exec(rest))) {
          open = m[0];
          cond = m[1];
        } else if ((m = /^\(\?(?:[:=!]|<=|<!|[aiLmsux]*(?:-[imsx]+)?:)/.exec(rest))) open = m[0];
        else open = "(";
        i += open.length;
        const body = parseAlt(null);
        if (re[i] !== ")") throw new Error("missing )");
        i++;
        push({
          kind: "group",
          open,
          ...(name !== undefined ? { name } : {}),
          ...(cond !== undefined ? { cond } : {}),
          branches: body,
          quant: "",
        });
        continue;
      }
      i++;
      push({ kind: "text", s: c, quant: "" });
    }
    if (inTag !== null) {
      // an unclosed <F-X> is literal text in Fail2ban (the tag stays as written)
      throw new Error(`<F-${inTag}> is not closed`);
    }
    return branches;
  };
  const out = parseAlt(null);
  if (i < re.length) throw new Error("unbalanced )");
  return out;
}

function serialize(branches: Item[][]): string {
  return branches.map((b) => b.map(itemText).join("")).join("|");
}

function itemText(it: Item): string {
  if (it.kind === "text") return it.s + it.quant;
  return `${it.open}${serialize(it.branches)})${it.quant}`;
}

/** Depth-first search for the first item satisfying `pred`, with its path. */
function find(branches: Item[][], pred: (it: Item) => boolean, path: Path = []): Path | null {
  for (let b = 0; b < branches.length; b++) {
    const items = branches[b]!;
    for (let k = 0; k < items.length; k++) {
      const it = items[k]!;
      if (pred(it)) return [...path, b, k];
      if (it.kind === "group") {
        const p = find(it.branches, pred, [...path, b, k]);
        if (p) return p;
      }
    }
  }
  return null;
}

function at(root: Item[][], path: Path): Item {
  let branches = root;
  let item: Item | undefined;
  for (let j = 0; j < path.length; j += 2) {
    item = branches[path[j]!]![path[j + 1]!]!;
    if (item.kind === "group") branches = item.branches;
  }
  return item!;
}

function allowsZero(q: string): boolean {
  return /^(?:[?*]|\{0*(?:,\d*)?\}|\{,\d*\})/.test(q);
}

function lazy(q: string): boolean {
  return /^(?:[*+?]|\{[\d,]*\})\?$/.test(q);
}

/** The quantifier made to require at least one; null when it allows none at all ({0}). */
function atLeastOne(q: string): string | null {
  if (!allowsZero(q)) return q;
  const tail = q.endsWith("?") && q.length > 1 ? "?" : "";
  if (q.startsWith("?")) return "";
  if (q.startsWith("*")) return `+${tail}`;
  const m = /^\{(\d*)(,?)(\d*)\}/.exec(q)!;
  if (!m[2]) return null;
  if (m[3] !== "" && Number(m[3]) < 1) return null;
  return `{1,${m[3]}}${tail}`;
}

/** Rewrites the conditional at `cPath` (referring to group at `gPath`) for `yes` or `no`. */
function variant(root: Item[][], cPath: Path, gPath: Path, yes: boolean): Item[][] | null {
  const r = structuredClone(root);
  const c = at(r, cPath) as GroupItem;
  const [yesB = [], noB = []] = c.branches;
  Object.assign(c, { open: "(?:", branches: [yes ? yesB : noB] });
  delete c.cond;
  if (yes) {
    // every group from the top down to G must match, and take the alternative leading to G
    let branches = r;
    for (let j = 0; j < gPath.length; j += 2) {
      const keep = branches[gPath[j]!]!;
      branches.splice(0, branches.length, keep);
      const it = keep[gPath[j + 1]!]!;
      if (it.kind !== "group") break;
      if (/^\(\?(?:[=!]|<[=!])/.test(it.open)) throw new Error("a condition on a group inside a lookaround");
      const q = atLeastOne(it.quant);
      if (q === null) return null;
      it.quant = q;
      branches = it.branches;
    }
    return r;
  }
  const parentPath = gPath.slice(0, -2);
  const seq =
    parentPath.length === 0
      ? r[gPath[0]!]!
      : (at(r, parentPath) as GroupItem).branches[gPath[gPath.length - 2]!]!;
  const k = gPath[gPath.length - 1]!;
  const g = seq[k]!;
  if (allowsZero(g.quant)) seq.splice(k, 1);
  else
    seq[k] = { kind: "group", open: "(?:", branches: [[{ kind: "text", s: "(?!)", quant: "" }]], quant: "" };
  return r;
}

function rewrite(root: Item[][], depth: number): Item[][] {
  if (depth > 8) throw new Error("too many conditional groups");
  const cPath = find(root, (it) => it.kind === "group" && it.cond !== undefined);
  if (!cPath) return root;
  const c = at(root, cPath) as GroupItem;
  if (c.branches.length > 2) throw new Error(`(?(${c.cond})…) has more than two alternatives`);
  const gPath = find(root, (it) => it.kind === "group" && it.name === c.cond);
  if (!gPath) throw new Error(`(?(${c.cond})…) refers to no group named ${c.cond}`);
  const g = at(root, gPath);
  const yes = variant(root, cPath, gPath, true);
  const no = variant(root, cPath, gPath, false);
  const parts: Item[][] = [];
  for (const v of lazy(g.quant) ? [no, yes] : [yes, no]) {
    if (v) parts.push([{ kind: "group", open: "(?:", branches: rewrite(v, depth + 1), quant: "" }]);
  }
  return parts;
}

/** Whether a regex has a conditional group. */
export function hasConditional(re: string): boolean {
  return /\(\?\(\w+\)/.test(re);
}

/** The regex without `(?(name)yes|no)` groups, or as it is when it has none. */
export function rewriteConditionals(re: string, where: string): string {
  if (!hasConditional(re)) return re;
  try {
    return serialize(rewrite(parse(re), 0));
  } catch (e) {
    throw new Fail2tsError(
      "regex",
      `cannot rewrite the conditional group for JavaScript: ${(e as Error).message}`,
      where,
    );
  }
}
