//! Filters from untrusted JSON: parsing and validation never panic, and a valid
//! filter evaluated through payload indexes admits exactly the points it
//! matches payload by payload (a differential check of the two evaluators).
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use naksha_index::payload::{FieldType, PayloadIndex};
use naksha_query::Filter;
use serde_json::{json, Value};

fn payloads() -> &'static (Vec<Value>, PayloadIndex) {
    static P: OnceLock<(Vec<Value>, PayloadIndex)> = OnceLock::new();
    P.get_or_init(|| {
        let payloads: Vec<Value> = (0..40i64)
            .map(|i| {
                let lang = ["en", "de", "fr"][(i % 3) as usize];
                let tags: Vec<String> = (0..i % 4).map(|t| format!("t{t}")).collect();
                let s = if i % 6 == 0 { Value::Null } else { json!("x") };
                json!({"n": i % 7, "f": i as f64 / 3.0, "lang": lang, "tags": tags, "b": i % 2 == 0,
                       "m": {"n": i % 5, "s": s}})
            })
            .collect();
        let schema: BTreeMap<String, FieldType> = [
            ("n", FieldType::Integer),
            ("f", FieldType::Float),
            ("lang", FieldType::Keyword),
            ("tags", FieldType::Keyword),
            ("b", FieldType::Bool),
            ("m.n", FieldType::Integer),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_owned(), t))
        .collect();
        let index = PayloadIndex::build(&schema, &payloads);
        (payloads, index)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(f) = Filter::from_json(v) else { return };
    let (payloads, index) = payloads();
    let set = f.evaluate(payloads.len(), index, |i| payloads[i as usize].clone());
    for (i, p) in payloads.iter().enumerate() {
        assert_eq!(set.contains(i), f.matches(p), "point {i} {p} under {f:?}");
    }
});
