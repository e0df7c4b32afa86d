//! Metadata filters, in the shape of the HTTP API:
//!
//! ```json
//! {"must": [{"key": "lang", "match": "en"}, {"key": "year", "range": {"gte": 2020}}],
//!  "should": [...], "must_not": [{"key": "draft", "match": true}]}
//! ```
//!
//! A condition is `{"key", "match"}` (equality; on arrays: contains),
//! `{"key", "in": [..]}`, `{"key", "range": {gt|gte|lt|lte}}`,
//! `{"key", "exists": bool}`, or a nested filter. `must` are all required,
//! at least one `should` is required when any is given, no `must_not` may hold.
//!
//! Filters come from untrusted clients, so [`Filter::validate`] bounds depth,
//! size and key length before anything is evaluated. Evaluation on a segment
//! uses its payload indexes where they answer exactly, and scans payloads
//! otherwise, with the same matching rules ([`naksha_index::payload`]).

use std::cell::OnceCell;

use naksha_index::bitset::Bitset;
pub use naksha_index::payload::NumRange;
use naksha_index::payload::{matches_eq, values_at, PayloadIndex};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 16;
/// Most conditions accepted in one filter, nested ones included.
pub const MAX_CONDITIONS: usize = 1024;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 256;

/// A boolean combination of conditions.
///
/// Only a JSON object parses: serde would otherwise read a struct from an
/// array of its fields in order, so `[]` and `[[cond]]` passed for filters (a
/// delete with `"filter": []` deleted every point).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Filter {
    /// All must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must: Vec<Condition>,
    /// At least one must hold (when non-empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub should: Vec<Condition>,
    /// None may hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_not: Vec<Condition>,
}

/// The fields of a filter object, as parsed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterFields {
    #[serde(default)]
    must: Vec<Condition>,
    #[serde(default)]
    should: Vec<Condition>,
    #[serde(default)]
    must_not: Vec<Condition>,
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = Filter;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a filter object with \"must\", \"should\" and/or \"must_not\" arrays")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> std::result::Result<Filter, A::Error> {
                let f = FilterFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Filter { must: f.must, should: f.should, must_not: f.must_not })
            }
        }
        d.deserialize_map(ObjectOnly)
    }
}

/// One condition: on a payload key, or a nested filter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub enum Condition {
    /// A test on the values at a payload key.
    Field {
        /// Dotted path into the payload.
        key: String,
        /// The test.
        test: FieldTest,
    },
    /// A nested filter.
    Nested(Box<Filter>),
}

/// A test on the values at one key.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldTest {
    /// Some value equals this one.
    Match(Value),
    /// Some value equals one of these.
    In(Vec<Value>),
    /// Some number lies in the range.
    Range(NumRange),
    /// The key is present with a non-null value (`true`), or absent (`false`).
    Exists(bool),
}

impl TryFrom<Value> for Condition {
    type Error = String;

    fn try_from(v: Value) -> std::result::Result<Self, String> {
        let Value::Object(mut map) = v else { return Err("a condition must be a JSON object".into()) };
        let Some(key) = map.remove("key") else {
            let nested: Filter = serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())?;
            return Ok(Condition::Nested(Box::new(nested)));
        };
        let Value::String(key) = key else { return Err("\"key\" must be a string".into()) };
        if map.len() != 1 {
            return Err(format!("condition on {key:?} needs exactly one of \"match\", \"in\", \"range\", \"exists\""));
        }
        let (op, arg) = map.into_iter().next().unwrap_or_default();
        let test = match op.as_str() {
            "match" => FieldTest::Match(arg),
            "in" => match arg {
                Value::Array(items) => FieldTest::In(items),
                _ => return Err(format!("\"in\" on {key:?} must be an array")),
            },
            "range" => FieldTest::Range(serde_json::from_value(arg).map_err(|e| format!("range on {key:?}: {e}"))?),
            "exists" => match arg {
                Value::Bool(b) => FieldTest::Exists(b),
                _ => return Err(format!("\"exists\" on {key:?} must be true or false")),
            },
            other => return Err(format!("unknown condition {other:?} on {key:?}")),
        };
        Ok(Condition::Field { key, test })
    }
}

impl From<Condition> for Value {
    fn from(c: Condition) -> Value {
        match c {
            Condition::Nested(f) => serde_json::to_value(*f).unwrap_or_default(),
            Condition::Field { key, test } => {
                let (op, arg) = match test {
                    FieldTest::Match(v) => ("match", v),
                    FieldTest::In(v) => ("in", Value::Array(v)),
                    FieldTest::Range(r) => ("range", serde_json::to_value(r).unwrap_or_default()),
                    FieldTest::Exists(b) => ("exists", Value::Bool(b)),
                };
                serde_json::json!({ "key": key, op: arg })
            }
        }
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

impl Filter {
    /// Parse and validate a filter from JSON.
    pub fn from_json(v: Value) -> Result<Self> {
        let f: Filter = serde_json::from_value(v).map_err(|e| Error::InvalidArgument(format!("filter: {e}")))?;
        f.validate()?;
        Ok(f)
    }

    /// Check limits and argument types; a filter that passes is safe to evaluate.
    pub fn validate(&self) -> Result<()> {
        let mut count = 0;
        self.validate_at(1, &mut count).map_err(|e| Error::InvalidArgument(format!("filter: {e}")))
    }

    fn validate_at(&self, depth: usize, count: &mut usize) -> std::result::Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        for c in self.must.iter().chain(&self.should).chain(&self.must_not) {
            *count += 1;
            if *count > MAX_CONDITIONS {
                return Err(format!("more than {MAX_CONDITIONS} conditions"));
            }
            match c {
                Condition::Nested(f) if f.is_empty() => {
                    return Err("a nested filter needs at least one condition".into())
                }
                Condition::Nested(f) => f.validate_at(depth + 1, count)?,
                Condition::Field { key, test } => {
                    if key.is_empty() || key.len() > MAX_KEY_LEN {
                        return Err(format!("key must be 1 to {MAX_KEY_LEN} bytes"));
                    }
                    match test {
                        FieldTest::Match(v) if !is_scalar(v) => {
                            return Err(format!("\"match\" on {key:?} takes a string, number or boolean"))
                        }
                        FieldTest::In(vs) if vs.len() > MAX_CONDITIONS || !vs.iter().all(is_scalar) => {
                            return Err(format!(
                                "\"in\" on {key:?} takes up to {MAX_CONDITIONS} strings, numbers or booleans"
                            ))
                        }
                        FieldTest::Range(r) => {
                            let bounds = [r.gt, r.gte, r.lt, r.lte];
                            if bounds.iter().all(Option::is_none) {
                                return Err(format!("range on {key:?} needs at least one of gt, gte, lt, lte"));
                            }
                            if bounds.iter().flatten().any(|b| !b.is_finite()) {
                                return Err(format!("range on {key:?} has a non-finite bound"));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// True when the filter has no condition (and so admits every point).
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty()
    }

    /// Whether `payload` passes the filter.
    pub fn matches(&self, payload: &Value) -> bool {
        self.must.iter().all(|c| c.matches(payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(payload)))
            && !self.must_not.iter().any(|c| c.matches(payload))
    }

    /// The offsets of a segment's points that pass, using `index` where it can
    /// answer and `payload(i)` otherwise (decoded at most once per point).
    pub fn evaluate<P>(&self, n: usize, index: &PayloadIndex, payload: P) -> Bitset
    where
        P: Fn(u32) -> Value,
    {
        let cache = OnceCell::new();
        let payloads = || cache.get_or_init(|| (0..n as u32).map(&payload).collect::<Vec<Value>>());
        self.evaluate_with(n, index, &payloads)
    }

    fn evaluate_with<'a>(&self, n: usize, index: &PayloadIndex, payloads: &dyn Fn() -> &'a Vec<Value>) -> Bitset {
        let mut acc = Bitset::full(n);
        for c in &self.must {
            acc.and(&c.evaluate(n, index, payloads));
        }
        if !self.should.is_empty() {
            let mut any = Bitset::new(n);
            for c in &self.should {
                any.or(&c.evaluate(n, index, payloads));
            }
            acc.and(&any);
        }
        for c in &self.must_not {
            acc.and_not(&c.evaluate(n, index, payloads));
        }
        acc
    }
}

impl Condition {
    fn matches(&self, payload: &Value) -> bool {
        match self {
            Condition::Nested(f) => f.matches(payload),
            Condition::Field { key, test } => match test {
                FieldTest::Match(v) => matches_eq(payload, key, v),
                FieldTest::In(vs) => vs.iter().any(|v| matches_eq(payload, key, v)),
                FieldTest::Range(r) => r.matches(payload, key),
                FieldTest::Exists(b) => values_at(payload, key).is_empty() != *b,
            },
        }
    }

    fn lookup_index(&self, index: &PayloadIndex) -> Option<Bitset> {
        let Condition::Field { key, test } = self else { return None };
        match test {
            FieldTest::Match(v) => index.eq(key, v),
            FieldTest::In(vs) => {
                let mut sets = vs.iter().map(|v| index.eq(key, v));
                let mut acc = sets.next()??;
                for s in sets {
                    acc.or(&s?);
                }
                Some(acc)
            }
            FieldTest::Range(r) => index.range(key, r),
            FieldTest::Exists(_) => None,
        }
    }

    fn evaluate<'a>(&self, n: usize, index: &PayloadIndex, payloads: &dyn Fn() -> &'a Vec<Value>) -> Bitset {
        if let Condition::Nested(f) = self {
            return f.evaluate_with(n, index, payloads);
        }
        if let Some(set) = self.lookup_index(index) {
            return set;
        }
        let mut set = Bitset::new(n);
        for (i, p) in payloads().iter().enumerate() {
            if self.matches(p) {
                set.insert(i);
            }
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use naksha_index::payload::FieldType;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_the_api_shape() {
        let f = Filter::from_json(json!({
            "must": [{"key": "lang", "match": "en"}, {"key": "year", "range": {"gte": 2020}}],
            "should": [{"key": "tags", "in": ["a", "b"]}, {"must_not": [{"key": "x", "exists": true}]}],
        }))
        .unwrap();
        assert!(f.matches(&json!({"lang": "en", "year": 2021, "tags": ["b"]})));
        assert!(f.matches(&json!({"lang": "en", "year": 2021})), "nested must_not on a missing key holds");
        assert!(!f.matches(&json!({"lang": "en", "year": 2019, "tags": ["a"]})));
        let back: Filter = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn hostile_filters_get_clear_errors() {
        let cases = [
            (json!({"must": [{"key": "a"}]}), "exactly one"),
            (json!({"must": [{"key": "a", "match": 1, "in": [1]}]}), "exactly one"),
            (json!({"must": [{"key": "a", "like": "x"}]}), "unknown condition"),
            (json!({"must": [{"key": "a", "match": {"x": 1}}]}), "string, number or boolean"),
            (json!({"must": [{"key": "a", "range": {}}]}), "at least one"),
            (json!({"must": [{"key": "a", "range": {"gte": "x"}}]}), "range"),
            (json!({"must": [{"key": "", "match": 1}]}), "key must be"),
            (json!({"must": [{"key": 5, "match": 1}]}), "must be a string"),
            (json!({"must": "x"}), "filter"),
            (json!({"mast": []}), "unknown field"),
            (json!({"must": [7]}), "JSON object"),
            // Arrays are not filters (serde reads structs from arrays unless told not to).
            (json!([]), "a filter object"),
            (json!([[]]), "a filter object"),
            (json!([[{"key": "lang", "match": "en"}]]), "a filter object"),
            (json!("lang = en"), "a filter object"),
            (json!({"must": [{}]}), "nested filter needs"),
            (json!({"should": [{"must": []}]}), "nested filter needs"),
            (json!({"must": null}), "filter"),
        ];
        for (v, want) in cases {
            let e = Filter::from_json(v.clone()).unwrap_err().to_string();
            assert!(e.contains(want), "{v}: {e}");
        }
        let mut deep = json!({"must": [{"key": "a", "match": 1}]});
        for _ in 0..40 {
            deep = json!({ "must": [deep] });
        }
        assert!(Filter::from_json(deep).unwrap_err().to_string().contains("deeper"));
        let wide: Vec<Value> = (0..2000).map(|i| json!({"key": "a", "match": i})).collect();
        assert!(Filter::from_json(json!({ "should": wide })).unwrap_err().to_string().contains("more than"));
    }

    fn arb_payload() -> impl Strategy<Value = Value> {
        (0i64..5, prop::sample::select(vec!["en", "de", "fr"]), any::<bool>(), prop::collection::vec("[xyz]", 0..3))
            .prop_map(|(n, lang, b, tags)| json!({"n": n, "lang": lang, "b": b, "tags": tags, "m": {"n": n}}))
    }

    fn arb_condition() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            (0i64..5).prop_map(|n| json!({"key": "n", "match": n})),
            prop::sample::select(vec!["en", "de"]).prop_map(|l| json!({"key": "lang", "match": l})),
            (0f64..5.0).prop_map(|x| json!({"key": "n", "range": {"gte": x}})),
            (0f64..5.0).prop_map(|x| json!({"key": "m.n", "range": {"lt": x}})),
            "[xyz]".prop_map(|t| json!({"key": "tags", "match": t})),
            any::<bool>().prop_map(|b| json!({"key": "b", "match": b})),
            any::<bool>().prop_map(|b| json!({"key": "tags", "exists": b})),
            Just(json!({"key": "lang", "in": ["fr", "de"]})),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            (prop::collection::vec(inner.clone(), 1..3), prop::collection::vec(inner, 0..2))
                .prop_map(|(must, not)| json!({"must": must, "must_not": not}))
        })
    }

    proptest! {
        /// Index-backed evaluation agrees with matching payload by payload.
        #[test]
        fn evaluation_agrees_with_matching(payloads in prop::collection::vec(arb_payload(), 1..30),
                                           conds in prop::collection::vec(arb_condition(), 1..3)) {
            let f = Filter::from_json(json!({"must": conds})).unwrap();
            let schema: BTreeMap<String, FieldType> = [("n", FieldType::Integer), ("lang", FieldType::Keyword),
                ("b", FieldType::Bool), ("m.n", FieldType::Float)].into_iter().map(|(k, t)| (k.to_owned(), t)).collect();
            let index = PayloadIndex::build(&schema, &payloads);
            let set = f.evaluate(payloads.len(), &index, |i| payloads[i as usize].clone());
            for (i, p) in payloads.iter().enumerate() {
                prop_assert_eq!(set.contains(i), f.matches(p));
            }
        }
    }
}
