// Drives the raw-wasm searcher (examples/wasm_searcher.rs) for vector-bench.
// Usage: node wasm_bench.mjs <searcher.wasm> <dir> <dim> <k> <ef,ef,...>
// <dir> holds manifest.cbor, chunks.bin (the chunks concatenated) and queries.f32 (LE);
// writes ids-<ef>.u32 there and prints one JSON line per ef.
import fs from "node:fs";

const [wasmPath, dir, dimArg, kArg, efArg] = process.argv.slice(2);
const dim = Number(dimArg);
const k = Number(kArg);
const { instance } = await WebAssembly.instantiate(fs.readFileSync(wasmPath), {});
const e = instance.exports;
const put = (bytes) => {
  const p = e.vb_alloc(bytes.length);
  new Uint8Array(e.memory.buffer).set(bytes, p);
  return p;
};
const manifest = fs.readFileSync(`${dir}/manifest.cbor`);
const blob = fs.readFileSync(`${dir}/chunks.bin`);
const queries = fs.readFileSync(`${dir}/queries.f32`);
const t0 = performance.now();
const mp = put(manifest);
const bp = put(blob);
const n = e.vb_load(mp, manifest.length, bp, blob.length);
const loadMs = performance.now() - t0;
if (n < 0) {
  console.error("vb_load refused the index");
  process.exit(1);
}
const nq = queries.length / (4 * dim);
const qp = put(queries);
const out = e.vb_alloc(4 * k * nq);
for (const ef of efArg.split(",").map(Number)) {
  // One warm-up pass (JIT tiers up), then the timed pass.
  for (let i = 0; i < Math.min(nq, 200); i++) e.vb_search(qp + i * 4 * dim, dim, k, ef, out + i * 4 * k);
  const t = performance.now();
  for (let i = 0; i < nq; i++) {
    if (e.vb_search(qp + i * 4 * dim, dim, k, ef, out + i * 4 * k) < 0) {
      console.error(`search ${i} failed`);
      process.exit(1);
    }
  }
  const ms = performance.now() - t;
  fs.writeFileSync(`${dir}/ids-${ef}.u32`, new Uint8Array(e.memory.buffer, out, 4 * k * nq));
  console.log(JSON.stringify({ ef, ms, nq, n, loadMs, memoryBytes: e.memory.buffer.byteLength }));
}
