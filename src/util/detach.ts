/**
 * A copy of a short string that does not keep the text it was cut from alive (a block of the
 * log, a megabyte). Not `(" " + s).slice(1)`: JavaScriptCore cuts that from the rope's second
 * half, which is `s` itself, still pointing into the block. A JSON round trip always makes a
 * new string, lone surrogates included.
 */
export function detach(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}
