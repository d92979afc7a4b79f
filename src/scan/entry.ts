import { CHILD_ENV, runChild } from "./child.ts";

if (Bun.main.startsWith("/$bunfs/") && process.env[CHILD_ENV] === "1") runChild();
