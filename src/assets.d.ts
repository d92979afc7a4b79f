/** C source embedded as text (src/scan/engine.c, compiled at run time by bun:ffi's cc). */
declare module "*.c" {
  const text: string;
  export default text;
}
