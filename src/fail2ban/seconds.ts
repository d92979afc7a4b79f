/**
 * Fail2ban's time values (MyTime.str2seconds): "600", "10m", "1h 30m", "1d12h", "2 weeks",
 * "1year-6mo", "3600*24", "-1". Units become `*seconds`, numbers side by side are added, and the
 * result is evaluated as arithmetic (+ - * / and parentheses only; Fail2ban uses Python's eval).
 */
const PARTS: Array<[RegExp, number]> = [
  [/(?<=[\d\s])(days?|da|dd?)\b/gi, 86400],
  [/(?<=[\d\s])(weeks?|wee?|ww?)\b/gi, 7 * 86400],
  [/(?<=[\d\s])(months?|mon?)\b/gi, ((365 * 3 + 366) * 86400) / 4 / 12],
  [/(?<=[\d\s])(years?|yea?|yy?)\b/gi, ((365 * 3 + 366) * 86400) / 4],
  [/(?<=[\d\s])(seconds?|sec?|ss?)\b/gi, 1],
  [/(?<=[\d\s])(minutes?|min?|mm?)\b/gi, 60],
  [/(?<=[\d\s])(hours?|hou?|hh?)\b/gi, 3600],
];

/** Seconds, or null when the text is not a time Fail2ban understands. */
export function str2seconds(value: string): number | null {
  let v = value.trim();
  if (v === "") return null;
  v = v.replace(/(?<=[a-z])(\d)/gi, " $1");
  for (const [re, n] of PARTS) v = v.replace(re, `*${n}`);
  for (let prev = ""; prev !== v; ) {
    prev = v;
    v = v.replace(/(\d)\s+(\d)/g, "$1+$2");
  }
  return evaluate(v);
}

/** + - * / ( ) and numbers; null for anything else. */
function evaluate(s: string): number | null {
  const toks = s.match(/\d+(?:\.\d*)?|\.\d+|[-+*/()]|\S/g) ?? [];
  let i = 0;
  const peek = () => toks[i];
  const expr = (): number | null => {
    let a = term();
    while (a !== null && (peek() === "+" || peek() === "-")) {
      const op = toks[i++];
      const b = term();
      if (b === null) return null;
      a = op === "+" ? a + b : a - b;
    }
    return a;
  };
  const term = (): number | null => {
    let a = unary();
    while (a !== null && (peek() === "*" || peek() === "/")) {
      const op = toks[i++];
      const b = unary();
      if (b === null || (op === "/" && b === 0)) return null;
      a = op === "*" ? a * b : a / b;
    }
    return a;
  };
  const unary = (): number | null => {
    if (peek() === "-" || peek() === "+") {
      const op = toks[i++];
      const a = unary();
      return a === null ? null : op === "-" ? -a : a;
    }
    if (peek() === "(") {
      i++;
      const a = expr();
      if (toks[i++] !== ")") return null;
      return a;
    }
    const t = toks[i++];
    return t !== undefined && /^[\d.]/.test(t) ? Number(t) : null;
  };
  const r = expr();
  return r !== null && i === toks.length && Number.isFinite(r) ? r : null;
}
