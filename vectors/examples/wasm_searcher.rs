//! The searcher as a raw wasm module, for `vector-bench` (no wasm-bindgen: plain exports over
//! linear memory, driven by `bench/wasm_bench.mjs` under node).
//!
//! Build: `cargo build -p vectors --release --example wasm_searcher --target wasm32-unknown-unknown`
//! (vector-bench does it). Natively it builds too, as an unused cdylib.

use std::cell::RefCell;
use vectors::{CompactIndex, Manifest, SearchScratch};

thread_local! {
    static INDEX: RefCell<Option<CompactIndex>> = const { RefCell::new(None) };
    static SCRATCH: RefCell<SearchScratch> = RefCell::new(SearchScratch::default());
}

/// Allocates `len` bytes, 8-aligned (queries are read as f32), for the host to write into;
/// never freed (the bench loads once).
#[no_mangle]
pub extern "C" fn vb_alloc(len: usize) -> *mut u8 {
    let mut buf = vec![0u64; len.div_ceil(8)].into_boxed_slice();
    let ptr = buf.as_mut_ptr() as *mut u8;
    std::mem::forget(buf);
    ptr
}

/// Loads an index from its manifest and the concatenation of its chunks (split here by the
/// manifest's lengths, then `from_chunks`). Returns the item count, or -1 on any error.
///
/// # Safety
/// The pointers must come from `vb_alloc` with at least the given lengths.
#[no_mangle]
pub unsafe extern "C" fn vb_load(
    manifest: *const u8,
    manifest_len: usize,
    blob: *const u8,
    blob_len: usize,
) -> i32 {
    let manifest = std::slice::from_raw_parts(manifest, manifest_len);
    let blob = std::slice::from_raw_parts(blob, blob_len);
    let Ok(m) = Manifest::from_bytes(manifest) else {
        return -1;
    };
    let mut chunks = Vec::with_capacity(m.chunk_count());
    let mut at = 0usize;
    for (len, _) in &m.chunks {
        let Some(c) = blob.get(at..at + len) else {
            return -1;
        };
        chunks.push(c);
        at += len;
    }
    match CompactIndex::from_chunks(manifest, &chunks) {
        Ok(index) => {
            let n = index.len() as i32;
            INDEX.with(|i| *i.borrow_mut() = Some(index));
            n
        }
        Err(_) => -1,
    }
}

/// Searches `dim` f32 at `query`, writes up to `k` item ids at `out`; returns how many, or -1.
///
/// # Safety
/// `query` must hold `dim` f32 and `out` room for `k` u32.
#[no_mangle]
pub unsafe extern "C" fn vb_search(
    query: *const f32,
    dim: usize,
    k: usize,
    ef: usize,
    out: *mut u32,
) -> i32 {
    let query = std::slice::from_raw_parts(query, dim);
    let out = std::slice::from_raw_parts_mut(out, k);
    INDEX.with(|i| {
        let index = i.borrow();
        let Some(index) = index.as_ref() else {
            return -1;
        };
        SCRATCH.with(
            |s| match index.search_with(&mut s.borrow_mut(), query, k, ef, |_| true) {
                Ok(hits) => {
                    for (o, h) in out.iter_mut().zip(&hits) {
                        *o = h.item;
                    }
                    hits.len() as i32
                }
                Err(_) => -1,
            },
        )
    })
}
