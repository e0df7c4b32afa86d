//! What ingestion jobs decode from outside: job bodies (JSON), replication
//! messages from Postgres (`pgoutput`), rows mapped to points, HTML pages and
//! CSV cells. None of it may panic; a decoded message re-encodes its LSN
//! exactly, and a body that parses validates without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use naksha_ingest::pgoutput::{decode, format_lsn, parse_lsn};
use naksha_ingest::row::{infer, vector_of, Row};
use naksha_ingest::spec::{JobSpec, Mapping};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            if let Ok(spec) = JobSpec::from_json(rest) {
                let _ = spec.redacted();
                let _ = spec.continuous();
            }
        }
        1 => {
            let _ = decode(rest);
            if rest.len() >= 8 {
                let lsn = u64::from_be_bytes(rest[..8].try_into().unwrap_or_default());
                assert_eq!(parse_lsn(&format_lsn(lsn)), Some(lsn));
            }
        }
        2 => {
            let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(rest) else { return };
            let m = Mapping {
                id: "id".into(),
                text: vec!["title".into()],
                payload: vec!["lang".into()],
                vector: Some("v".into()),
                ..Mapping::default()
            };
            let _ = m.apply(Row { fields: fields.clone(), vector: None }, None);
            let chunked = Mapping { vector: None, chunk: true, title: Some("t".into()), ..m };
            let _ = chunked.apply(Row { fields, vector: None }, None);
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let _ = naksha_ingest::s3::html_to_text(&text);
            let _ = infer(&text);
            let _ = vector_of(&Value::String(text.into_owned()));
        }
    }
});
