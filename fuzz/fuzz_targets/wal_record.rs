//! WAL files and record bodies from untrusted bytes: decoding never panics,
//! and whatever decodes encodes to bytes that decode to the same encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use naksha_storage::wal::{self, WalOp, FORMAT_VERSION};

fuzz_target!(|data: &[u8]| {
    if let Ok(op) = WalOp::decode(data, FORMAT_VERSION) {
        let bytes = op.encode();
        let again = WalOp::decode(&bytes, FORMAT_VERSION).expect("an encoded record decodes");
        assert_eq!(again.encode(), bytes);
    }
    let _ = WalOp::decode(data, 1);
    let _ = wal::scan(data, None);
});
