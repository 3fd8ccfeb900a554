//! Compression bombs cost bounded memory: the decoded buffer stops at the limit + 1 byte and
//! the decoders' own state is bounded by their formats. Measured with a counting allocator
//! (its own test binary, so no other test allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use meshdlp::codec::{decode, DecodeError};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes allocated by `f` above what was allocated before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - base)
}

#[test]
fn bombs_cost_bounded_memory() {
    const LIMIT: usize = 1 << 20;
    let zeros = vec![0u8; 10 << 20];
    let gzip = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&zeros).unwrap();
        e.finish().unwrap()
    };
    let deflate = {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&zeros).unwrap();
        e.finish().unwrap()
    };
    let br = {
        let mut out = Vec::new();
        {
            // lgwin 24: the largest standard window, the worst case for the decoder.
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 11, 24);
            w.write_all(&zeros).unwrap();
        }
        out
    };
    let zstd = ruzstd::encoding::compress_to_vec(
        zeros.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    drop(zeros);
    // (encoding, body, bound on peak memory above the limit)
    let cases: [(&str, &[u8], usize); 4] = [
        ("gzip", &gzip, 256 << 10),
        ("deflate", &deflate, 256 << 10),
        ("br", &br, (16 << 20) + (1 << 20)),
        ("zstd", &zstd, (8 << 20) + (1 << 20)),
    ];
    for (coding, body, bound) in cases {
        let (result, peak) = peak_of(|| decode(coding, body, LIMIT));
        assert_eq!(result, Err(DecodeError::TooLarge(LIMIT)), "{coding}");
        eprintln!(
            "{coding}: {} compressed bytes, peak {} KiB",
            body.len(),
            peak >> 10
        );
        assert!(peak <= LIMIT + bound, "{coding}: peak {peak}");
    }
}
