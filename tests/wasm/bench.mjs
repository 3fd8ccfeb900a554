// Runs the engine benchmark (examples/bench.rs built for wasm32-wasip1) inside V8 through
// Node's WASI, so the cost of V8 is measured apart from Envoy: `make bench-wasm`.
// usage: node tests/wasm/bench.mjs <bench.wasm> [args...]; BENCH_* variables pass through.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import process from "node:process";

const [wasmPath, ...args] = process.argv.slice(2);
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => k.startsWith("BENCH_")),
);
const wasi = new WASI({
  version: "preview1",
  args: ["bench", ...args],
  env,
  preopens: { ".": process.cwd() },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
// Node 20 segfaults in its own WASI code (Builtins_KeyedLoadIC_Megamorphic, after the last
// fd_write) at the end of some runs: first a full run of every section (so the Makefile runs
// the streaming section in a process of its own), then, in session 16, the corpus section
// alone, every time. Calling the WASI functions through plain wrappers avoids it (same
// module, 0 crashes where it crashed every run); they add a JS call to each clock read.
const imports = wasi.getImportObject();
const preview1 = imports.wasi_snapshot_preview1;
for (const [name, f] of Object.entries(preview1)) {
  preview1[name] = (...a) => f(...a);
}
const instance = await WebAssembly.instantiate(module, imports);
process.exit(wasi.start(instance));
