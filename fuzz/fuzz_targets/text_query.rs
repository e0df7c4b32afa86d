//! BM25 query text from untrusted input: the query language either parses or
//! is a clear error, plain syntax always parses, and neither panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use naksha_index::text::{Syntax, TextConfig, TextIndex};

fn index() -> &'static TextIndex {
    static I: OnceLock<TextIndex> = OnceLock::new();
    I.get_or_init(|| {
        let config: TextConfig =
            serde_json::from_value(serde_json::json!({"fields": ["title", "body"], "boosts": {"title": 2.0}}))
                .expect("config");
        TextIndex::in_memory(&config).expect("in-memory index")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = index().parse_as(text, Syntax::Query);
    index().parse_as(text, Syntax::Plain).expect("plain syntax accepts any text");
});
