//! Payload indexes: which points of a segment have `lang = "en"` or
//! `year >= 2020`, answered from sorted postings instead of parsing JSON.
//!
//! This module also defines what a match *means* ([`value_eq`],
//! [`NumRange::contains`], [`values_at`]); the query layer's full-scan
//! fallback calls the same functions, so an indexed and an unindexed key
//! always give the same answer.
//!
//! | type      | values indexed at the path                       | answers          |
//! |-----------|--------------------------------------------------|------------------|
//! | `keyword` | strings (arrays of strings: each element)        | `match` string   |
//! | `integer` | integers (`i64`)                                 | `match`, `range` |
//! | `float`   | every number, as `f64`                           | `match`, `range` |
//! | `bool`    | booleans                                         | `match` bool     |
//!
//! A lookup the index cannot answer exactly (a keyword index asked for a
//! number, an integer index whose field also holds fractions, a key without an
//! index) returns `None`, and the caller scans payloads instead.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bitset::Bitset;

/// Type of a payload index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Exact string values.
    Keyword,
    /// 64-bit integers.
    Integer,
    /// Floating-point numbers.
    Float,
    /// Booleans.
    Bool,
}

/// Values found at a dotted `path` (`a.b.c`) in `payload`. Arrays are
/// flattened at every step, so `tags` on `{"tags": ["x", "y"]}` yields both
/// strings, and `items.sku` collects `sku` from every object of `items`.
pub fn values_at<'a>(payload: &'a Value, path: &str) -> Vec<&'a Value> {
    fn walk<'a>(v: &'a Value, parts: &[&str], out: &mut Vec<&'a Value>) {
        match (v, parts.split_first()) {
            (Value::Array(items), _) => items.iter().for_each(|i| walk(i, parts, out)),
            (_, None) if !v.is_null() => out.push(v),
            (_, None) => {}
            (Value::Object(map), Some((head, rest))) => {
                if let Some(child) = map.get(*head) {
                    walk(child, rest, out);
                }
            }
            _ => {}
        }
    }
    let parts: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    walk(payload, &parts, &mut out);
    out
}

/// Equality between a stored value and a wanted one: strings and booleans
/// exactly; numbers exactly as integers when both are integers, else as `f64`.
pub fn value_eq(stored: &Value, wanted: &Value) -> bool {
    match (stored, wanted) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => a.as_f64() == b.as_f64(),
        },
        _ => stored == wanted,
    }
}

/// A numeric range; absent bounds are open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumRange {
    /// Strictly greater than.
    pub gt: Option<f64>,
    /// Greater than or equal.
    pub gte: Option<f64>,
    /// Strictly less than.
    pub lt: Option<f64>,
    /// Less than or equal.
    pub lte: Option<f64>,
}

impl NumRange {
    /// Whether `x` lies in the range.
    pub fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }

    /// Whether any number at `path` in `payload` lies in the range.
    pub fn matches(&self, payload: &Value, path: &str) -> bool {
        values_at(payload, path).iter().any(|v| v.as_f64().is_some_and(|x| self.contains(x)))
    }
}

/// Whether any value at `path` in `payload` equals `wanted`.
pub fn matches_eq(payload: &Value, path: &str, wanted: &Value) -> bool {
    values_at(payload, path).iter().any(|v| value_eq(v, wanted))
}

#[derive(Debug)]
enum FieldIndex {
    Keyword(HashMap<String, Vec<u32>>),
    /// Sorted by value; `complete` is false when the field also holds non-integers.
    Integer {
        postings: Vec<(i64, u32)>,
        complete: bool,
    },
    Float(Vec<(f64, u32)>),
    Bool([Vec<u32>; 2]),
}

/// Payload indexes of one segment.
#[derive(Debug, Default)]
pub struct PayloadIndex {
    n: usize,
    fields: HashMap<String, FieldIndex>,
}

impl PayloadIndex {
    /// Index `payloads` (offset order) for every key of `schema`.
    pub fn build<'a>(schema: &BTreeMap<String, FieldType>, payloads: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut fields: HashMap<String, FieldIndex> = schema
            .iter()
            .map(|(k, t)| {
                let idx = match t {
                    FieldType::Keyword => FieldIndex::Keyword(HashMap::new()),
                    FieldType::Integer => FieldIndex::Integer { postings: Vec::new(), complete: true },
                    FieldType::Float => FieldIndex::Float(Vec::new()),
                    FieldType::Bool => FieldIndex::Bool([Vec::new(), Vec::new()]),
                };
                (k.clone(), idx)
            })
            .collect();
        let mut n = 0;
        for (i, payload) in payloads.into_iter().enumerate() {
            n = i + 1;
            for (key, idx) in fields.iter_mut() {
                for v in values_at(payload, key) {
                    let i = i as u32;
                    match (&mut *idx, v) {
                        (FieldIndex::Keyword(map), Value::String(s)) => map.entry(s.clone()).or_default().push(i),
                        (FieldIndex::Integer { postings, .. }, Value::Number(x)) if x.as_i64().is_some() => {
                            postings.push((x.as_i64().unwrap_or_default(), i))
                        }
                        (FieldIndex::Integer { complete, .. }, Value::Number(_)) => *complete = false,
                        (FieldIndex::Float(p), Value::Number(x)) => p.push((x.as_f64().unwrap_or_default(), i)),
                        (FieldIndex::Bool(p), Value::Bool(b)) => p[*b as usize].push(i),
                        _ => {}
                    }
                }
            }
        }
        for idx in fields.values_mut() {
            match idx {
                FieldIndex::Integer { postings, .. } => postings.sort_unstable(),
                FieldIndex::Float(p) => p.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))),
                _ => {}
            }
        }
        Self { n, fields }
    }

    /// Whether `key` has an index.
    pub fn is_indexed(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    fn set(&self, ids: impl Iterator<Item = u32>) -> Bitset {
        let mut b = Bitset::new(self.n);
        ids.for_each(|i| {
            b.insert(i as usize);
        });
        b
    }

    /// Points where some value at `key` equals `wanted`, if the index can tell exactly.
    pub fn eq(&self, key: &str, wanted: &Value) -> Option<Bitset> {
        match (self.fields.get(key)?, wanted) {
            (FieldIndex::Keyword(map), Value::String(s)) => Some(self.set(map.get(s).into_iter().flatten().copied())),
            (FieldIndex::Integer { postings, complete: true }, Value::Number(x)) => {
                // `value_eq` compares an integer with a float as f64s: 0 equals 0.0 (the
                // `filter` fuzz target found the index answering otherwise).
                let as_int = match (x.as_i64(), x.as_u64(), x.as_f64()) {
                    (Some(i), _, _) => Some(i),
                    (None, Some(_), _) => None, // above i64::MAX: no stored i64 equals it
                    (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < (1u64 << 53) as f64 => Some(f as i64),
                    // Integral floats beyond 2^53 equal several i64s as f64s: let the scan decide.
                    (None, None, Some(f)) if f.fract() == 0.0 => return None,
                    _ => None, // a fraction equals no integer
                };
                let Some(x) = as_int else {
                    return Some(Bitset::new(self.n));
                };
                let lo = postings.partition_point(|p| p.0 < x);
                let hi = postings.partition_point(|p| p.0 <= x);
                Some(self.set(postings[lo..hi].iter().map(|p| p.1)))
            }
            (FieldIndex::Float(p), Value::Number(x)) if x.as_i64().is_none_or(|v| v.unsigned_abs() < 1 << 53) => {
                let x = x.as_f64()?;
                let lo = p.partition_point(|e| e.0 < x);
                let hi = p.partition_point(|e| e.0 <= x);
                Some(self.set(p[lo..hi].iter().map(|e| e.1)))
            }
            (FieldIndex::Bool(p), Value::Bool(b)) => Some(self.set(p[*b as usize].iter().copied())),
            _ => None,
        }
    }

    /// Points where some number at `key` lies in `range`, if the index can tell exactly.
    pub fn range(&self, key: &str, range: &NumRange) -> Option<Bitset> {
        let lower = |x: f64| range.gt.is_none_or(|b| x > b) && range.gte.is_none_or(|b| x >= b);
        let upper = |x: f64| range.lt.is_none_or(|b| x < b) && range.lte.is_none_or(|b| x <= b);
        match self.fields.get(key)? {
            FieldIndex::Integer { postings, complete: true } => {
                let lo = postings.partition_point(|p| !lower(p.0 as f64));
                let hi = postings.partition_point(|p| upper(p.0 as f64));
                Some(self.set(postings[lo..hi.max(lo)].iter().map(|p| p.1)))
            }
            FieldIndex::Float(p) => {
                let lo = p.partition_point(|e| !lower(e.0));
                let hi = p.partition_point(|e| upper(e.0));
                Some(self.set(p[lo..hi.max(lo)].iter().map(|e| e.1)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Found by the `filter` fuzz target: an integer index asked for `0.0`
    /// found nothing while the payload scan (and so the memtable) matched `0`.
    #[test]
    fn integer_index_agrees_with_the_scan_on_integral_floats() {
        let payloads = [json!({"i": 0}), json!({"i": 7}), json!({"i": -3}), json!({"i": 9007199254740993u64})];
        let index = PayloadIndex::build(&schema(), &payloads);
        for wanted in [json!(0.0), json!(7.0), json!(-3.0), json!(7.5), json!(1e300), json!(9007199254740992.0)] {
            let scan: Vec<bool> = payloads.iter().map(|p| matches_eq(p, "i", &wanted)).collect();
            if let Some(set) = index.eq("i", &wanted) {
                let got: Vec<bool> = (0..payloads.len()).map(|i| set.contains(i)).collect();
                assert_eq!(got, scan, "{wanted}");
            }
        }
        assert_eq!(index.eq("i", &json!(7.0)).unwrap().count(), 1);
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0i64..6).prop_map(|x| json!(x)),
            (0i64..6).prop_map(|x| json!(x as f64 + 0.5)),
            (0i64..6).prop_map(|x| json!(x as f64)),
            "[ab]".prop_map(Value::String),
            any::<bool>().prop_map(Value::Bool),
            prop::collection::vec("[abc]", 0..3).prop_map(|v| json!(v)),
            Just(Value::Null),
        ]
    }

    fn schema() -> BTreeMap<String, FieldType> {
        [("k", FieldType::Keyword), ("i", FieldType::Integer), ("f", FieldType::Float), ("b", FieldType::Bool)]
            .into_iter()
            .map(|(k, t)| (k.to_owned(), t))
            .collect()
    }

    proptest! {
        /// Whatever the index answers equals what a scan of the payloads says.
        #[test]
        fn index_agrees_with_scan(values in prop::collection::vec(arb_value(), 1..40), wanted in arb_value(),
                                  lo in 0f64..6.0, width in 0f64..4.0) {
            let payloads: Vec<Value> = values.iter().map(|v| json!({"k": v, "i": v, "f": v, "b": v})).collect();
            let idx = PayloadIndex::build(&schema(), &payloads);
            let range = NumRange { gte: Some(lo), lt: Some(lo + width), ..Default::default() };
            for key in ["k", "i", "f", "b"] {
                if let Some(set) = idx.eq(key, &wanted) {
                    for (i, p) in payloads.iter().enumerate() {
                        prop_assert_eq!(set.contains(i), matches_eq(p, key, &wanted), "eq {} {} {:?}", key, i, p);
                    }
                }
                if let Some(set) = idx.range(key, &range) {
                    for (i, p) in payloads.iter().enumerate() {
                        prop_assert_eq!(set.contains(i), range.matches(p, key), "range {} {}", key, i);
                    }
                }
            }
        }
    }

    #[test]
    fn dotted_paths_flatten_arrays() {
        let p = json!({"a": {"b": [{"c": 1}, {"c": [2, 3]}]}, "tags": ["x", "y"]});
        assert_eq!(values_at(&p, "a.b.c"), vec![&json!(1), &json!(2), &json!(3)]);
        assert!(matches_eq(&p, "tags", &json!("y")));
        assert!(!matches_eq(&p, "tags.x", &json!("y")));
        assert!(value_eq(&json!(2), &json!(2.0)) && !value_eq(&json!(2), &json!("2")));
    }
}
