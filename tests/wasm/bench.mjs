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
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
