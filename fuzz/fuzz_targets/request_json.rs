//! The HTTP API's request bodies from untrusted bytes (the first byte picks the
//! endpoint): collection configs, upserts as JSON and NDJSON, queries, RAG. Each
//! either becomes an engine request or a 4xx error; nothing panics or is a 5xx.
#![no_main]

use libfuzzer_sys::fuzz_target;
use naksha_query::embed::Models;
use naksha_server::http::points;
use naksha_server::ops::{self, CreateBody, QueryBody, RagBody};

fn client_error(e: naksha_server::error::ApiError) {
    assert!(e.status().is_client_error(), "{:?}: {}", e.kind, e.message);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 5 {
        0 => {
            if let Err(e) =
                ops::decode_json::<CreateBody>(body).and_then(|b| ops::collection_config(b, &Models::empty()))
            {
                client_error(e);
            }
        }
        1 | 2 => {
            let ct = if which % 5 == 1 { "application/json" } else { "application/x-ndjson" };
            if let Err(e) = points::parse_points(Some(ct), body) {
                client_error(e);
            }
        }
        3 => match ops::decode_json::<QueryBody>(body).and_then(QueryBody::into_request) {
            Ok(_) => {}
            Err(e) => client_error(e),
        },
        _ => match ops::decode_json::<RagBody>(body).and_then(|b| b.into_request(&["127.0.0.1".to_owned()])) {
            Ok(_) => {}
            Err(e) => client_error(e),
        },
    }
});
