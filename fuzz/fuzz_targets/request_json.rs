//! The HTTP API's request bodies from untrusted bytes (the first byte picks the
//! endpoint): collection configs, upserts as JSON and NDJSON, queries. Each
//! either becomes an engine request or a 4xx error; nothing panics or is a 5xx.
#![no_main]

use libfuzzer_sys::fuzz_target;
use naksha_query::embed::Models;
use naksha_server::http::{points, query};
use naksha_server::ops;

fn client_error(e: naksha_server::error::ApiError) {
    assert!(e.status().is_client_error(), "{:?}: {}", e.kind, e.message);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            if let Err(e) = ops::collection_config(body, &Models::empty()) {
                client_error(e);
            }
        }
        1 | 2 => {
            let ct = if which % 4 == 1 { "application/json" } else { "application/x-ndjson" };
            if let Err(e) = points::parse_points(Some(ct), body) {
                client_error(e);
            }
        }
        _ => match ops::decode_json::<query::QueryBody>(body).and_then(query::QueryBody::into_request) {
            Ok(_) => {}
            Err(e) => client_error(e),
        },
    }
});
