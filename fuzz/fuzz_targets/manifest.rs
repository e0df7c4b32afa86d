//! The manifest from untrusted bytes: parsing never panics, and what parses
//! survives a store/parse round trip unchanged.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use naksha_storage::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data, Path::new("MANIFEST")) {
        let bytes = serde_json::to_vec(&m).expect("a parsed manifest serialises");
        assert_eq!(Manifest::parse(&bytes, Path::new("MANIFEST")).ok(), Some(m));
    }
});
