//! Segment section files (vectors, points, graph, deletions) from untrusted
//! bytes: parsing never panics, and the ranges it returns lie inside the file,
//! 64-byte aligned, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use naksha_storage::section;

fuzz_target!(|data: &[u8]| {
    // The file's own magic, so every file kind is reachable.
    let magic: [u8; 8] = data.get(..8).and_then(|m| m.try_into().ok()).unwrap_or(*b"NKVECS\0\0");
    if let Ok((_, ranges)) = section::parse(data, magic) {
        let mut end = 0;
        for r in ranges {
            assert!(r.start >= end && r.start <= r.end && r.end <= data.len(), "{r:?} in {} bytes", data.len());
            assert_eq!(r.start % 64, 0, "unaligned section");
            end = r.end;
        }
    }
});
