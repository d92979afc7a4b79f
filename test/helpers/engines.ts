/**
 * The builds of scan's native engine a test holds to its reference: TinyCC's always (compiled
 * from src/scan/engine.c at run time), the C compiler's (dist/engine.so) when it was built from
 * this source. Tests pick one through FAIL2TS_ENGINE; restoreEngineAfterEach puts it back.
 */
import { afterEach } from "bun:test";
import { statSync } from "node:fs";
import { join } from "node:path";

const root = new URL("../..", import.meta.url).pathname;

export function engineKinds(): string[] {
  try {
    const fresh =
      statSync(join(root, "dist/engine.so")).mtimeMs >= statSync(join(root, "src/scan/engine.c")).mtimeMs;
    return fresh ? ["so", "tcc"] : ["tcc"];
  } catch {
    return ["tcc"];
  }
}

/** After each test of the file, FAIL2TS_ENGINE as it was before. */
export function restoreEngineAfterEach(): void {
  const saved = process.env.FAIL2TS_ENGINE;
  afterEach(() => {
    if (saved === undefined) delete process.env.FAIL2TS_ENGINE;
    else process.env.FAIL2TS_ENGINE = saved;
  });
}
