//! Points and their binary codec, shared by the WAL and segment files.
//!
//! | field   | encoding                                                        |
//! |---------|-----------------------------------------------------------------|
//! | id      | tag `u8` (0 = number, 1 = string) + `u64` LE or `u32` LE len + UTF-8 |
//! | vector  | `u32` LE dim + dim × `f32` LE                                   |
//! | payload | `u32` LE len + compact JSON bytes (`null` when len = 0)          |
//! | text    | same as payload: a JSON object of text fields (WAL v2 and later)  |
//!
//! Decoding never panics: every length is checked against the remaining input
//! and against [`MAX_FIELD_LEN`].

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// Upper bound for any single length field, so a corrupt length cannot make a
/// decoder allocate gigabytes.
pub const MAX_FIELD_LEN: usize = 256 << 20;

/// Longest string id accepted, in bytes (document ids leave room for a chunk suffix).
pub const MAX_ID_LEN: usize = 512;
/// Largest payload of one point, as JSON text (about).
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Largest text fields of one point, as JSON text (about).
pub const MAX_TEXT_BYTES: usize = 8 << 20;
/// Deepest nesting of a payload.
pub const MAX_PAYLOAD_DEPTH: usize = 32;

/// Size and shape of a JSON value, measured without serialising it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JsonSize {
    /// About the length of its compact JSON text.
    pub text_bytes: usize,
    /// About the bytes it occupies in memory as a `serde_json::Value`.
    pub heap_bytes: usize,
    /// Nesting depth (a scalar is 0).
    pub depth: usize,
}

impl JsonSize {
    /// Measure `v`.
    pub fn of(v: &Value) -> Self {
        const NODE: usize = std::mem::size_of::<Value>();
        match v {
            Value::Null | Value::Bool(_) => Self { text_bytes: 5, heap_bytes: NODE, depth: 0 },
            Value::Number(_) => Self { text_bytes: 12, heap_bytes: NODE, depth: 0 },
            Value::String(s) => Self { text_bytes: s.len() + 2, heap_bytes: NODE + s.len(), depth: 0 },
            Value::Array(items) => items.iter().fold(Self { text_bytes: 2, heap_bytes: NODE, depth: 1 }, |acc, x| {
                let m = Self::of(x);
                Self {
                    text_bytes: acc.text_bytes + m.text_bytes + 1,
                    heap_bytes: acc.heap_bytes + m.heap_bytes,
                    depth: acc.depth.max(m.depth + 1),
                }
            }),
            Value::Object(map) => map.iter().fold(Self { text_bytes: 2, heap_bytes: NODE, depth: 1 }, |acc, (k, x)| {
                let m = Self::of(x);
                Self {
                    text_bytes: acc.text_bytes + k.len() + 4 + m.text_bytes,
                    // key string, entry overhead of the map
                    heap_bytes: acc.heap_bytes + k.len() + 48 + m.heap_bytes,
                    depth: acc.depth.max(m.depth + 1),
                }
            }),
        }
    }
}

/// A point id: an unsigned 64-bit integer or a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PointId {
    /// Numeric id.
    Num(u64),
    /// String id.
    Str(String),
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl PointId {
    /// Check the one rule for ids: a number, or a string of 1 to [`MAX_ID_LEN`] bytes.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self {
            PointId::Num(_) => Ok(()),
            PointId::Str(s) if s.is_empty() => Err("a string id must not be empty".into()),
            PointId::Str(s) if s.len() > MAX_ID_LEN => {
                Err(format!("string id of {} bytes is longer than {MAX_ID_LEN}", s.len()))
            }
            PointId::Str(_) => Ok(()),
        }
    }
}

impl From<u64> for PointId {
    fn from(v: u64) -> Self {
        PointId::Num(v)
    }
}

impl From<&str> for PointId {
    fn from(v: &str) -> Self {
        PointId::Str(v.to_owned())
    }
}

impl From<String> for PointId {
    fn from(v: String) -> Self {
        PointId::Str(v)
    }
}

/// A point: id, dense vector, JSON payload and text fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Identity; upserting the same id replaces the point.
    pub id: PointId,
    /// Dense vector (already validated and, for cosine, normalised by the caller).
    pub vector: Vec<f32>,
    /// Arbitrary JSON payload (an object, or `null` for none).
    #[serde(default)]
    pub payload: Value,
    /// Text fields (`{"field": "text", ...}`, or `null`): embedded by the
    /// collection's model and returned with `with_text`.
    #[serde(default)]
    pub text: Value,
}

impl Point {
    /// A point from its parts, without text.
    pub fn new(id: PointId, vector: Vec<f32>, payload: Value) -> Self {
        Self { id, vector, payload, text: Value::Null }
    }

    /// The same point with text fields.
    pub fn with_text(mut self, text: Value) -> Self {
        self.text = text;
        self
    }
}

/// Append-only encoder for the codec above.
#[derive(Debug, Default)]
pub struct Encoder {
    /// Encoded bytes so far.
    pub buf: Vec<u8>,
}

impl Encoder {
    /// Append one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Append a `u32` LE.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Append a `u64` LE.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Append length-prefixed bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }
    /// Append a point id.
    pub fn id(&mut self, id: &PointId) {
        match id {
            PointId::Num(n) => {
                self.u8(0);
                self.u64(*n);
            }
            PointId::Str(s) => {
                self.u8(1);
                self.bytes(s.as_bytes());
            }
        }
    }
    /// Append a vector.
    pub fn vector(&mut self, v: &[f32]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(bytemuck::cast_slice(v));
    }
    /// Append a JSON payload (compact; `null` is stored as zero bytes).
    pub fn payload(&mut self, v: &Value) {
        if v.is_null() {
            self.u32(0);
        } else {
            // Serialising a `Value` cannot fail: keys are always strings.
            let bytes = serde_json::to_vec(v).unwrap_or_default();
            self.bytes(&bytes);
        }
    }
    /// Append a whole point.
    pub fn point(&mut self, p: &Point) {
        self.id(&p.id);
        self.vector(&p.vector);
        self.payload(&p.payload);
        self.payload(&p.text);
    }
}

/// Bounds-checked decoder for the codec above.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Decode from `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    /// True when all input has been consumed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Error::Decode(format!("need {n} bytes, {} left", self.buf.len())));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    /// Read one byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    /// Read a `u32` LE.
    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Read a `u64` LE.
    pub fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn len(&mut self, unit: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(unit) > MAX_FIELD_LEN {
            return Err(Error::Decode(format!("length {n} exceeds the limit")));
        }
        Ok(n)
    }
    /// Read length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len(1)?;
        self.take(n)
    }
    /// Read a point id.
    pub fn id(&mut self) -> Result<PointId> {
        match self.u8()? {
            0 => Ok(PointId::Num(self.u64()?)),
            1 => {
                let b = self.bytes()?;
                let s = std::str::from_utf8(b).map_err(|e| Error::Decode(format!("id is not UTF-8: {e}")))?;
                Ok(PointId::Str(s.to_owned()))
            }
            t => Err(Error::Decode(format!("unknown id tag {t}"))),
        }
    }
    /// Read a vector.
    pub fn vector(&mut self) -> Result<Vec<f32>> {
        let n = self.len(4)?;
        let b = self.take(n * 4)?;
        Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    /// Read a JSON payload.
    pub fn payload(&mut self) -> Result<Value> {
        let b = self.bytes()?;
        if b.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(b).map_err(|e| Error::Decode(format!("payload is not JSON: {e}")))
    }
    /// Read a whole point.
    pub fn point(&mut self) -> Result<Point> {
        Ok(Point { id: self.id()?, vector: self.vector()?, payload: self.payload()?, text: self.payload()? })
    }

    /// Read a point written before text fields existed (WAL v1).
    pub fn point_v1(&mut self) -> Result<Point> {
        Ok(Point { id: self.id()?, vector: self.vector()?, payload: self.payload()?, text: Value::Null })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    pub(crate) fn arb_id() -> impl Strategy<Value = PointId> {
        prop_oneof![any::<u64>().prop_map(PointId::Num), ".{0,12}".prop_map(PointId::Str)]
    }

    pub(crate) fn arb_point() -> impl Strategy<Value = Point> {
        (
            arb_id(),
            prop_oneof![Just(0usize), Just(1), 2usize..40].prop_flat_map(|n| prop::collection::vec(-1e6f32..1e6, n)),
            prop_oneof![
                Just(Value::Null),
                (".{0,8}", any::<i64>()).prop_map(|(k, v)| serde_json::json!({ k: v, "tags": ["a", "b"] })),
            ],
        )
            .prop_map(|(id, vector, payload)| Point { id, vector, text: payload.clone(), payload })
    }

    /// Payload numbers are stored as JSON text and parsed back: the parse must be
    /// correctly rounded or a number drifts by an ulp on every round trip (found
    /// by the `wal_record` fuzz target: 6626000000000000000001815840937 read as
    /// 6.625999999999999e27, which reads back as 6.626e27). serde_json's
    /// `float_roundtrip` feature is on for the workspace for this.
    #[test]
    fn payload_numbers_survive_round_trips_exactly() {
        for text in [
            "6626000000000000000001815840937",
            "0.30000000000000004",
            "2.2250738585072014e-308",
            "1e23",
            "9007199254740993.0",
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(v.as_f64(), text.parse::<f64>().ok(), "{text}");
            let p = Point::new(PointId::Num(1), vec![], serde_json::json!({ "x": v }));
            let mut e = Encoder::default();
            e.point(&p);
            let back = Decoder::new(&e.buf).point().unwrap();
            let mut again = Encoder::default();
            again.point(&back);
            assert_eq!((back, again.buf), (p, e.buf), "{text}");
        }
    }

    proptest! {
        #[test]
        fn point_round_trips(p in arb_point()) {
            let mut e = Encoder::default();
            e.point(&p);
            let mut d = Decoder::new(&e.buf);
            prop_assert_eq!(d.point().unwrap(), p);
            prop_assert!(d.is_empty());
        }

        #[test]
        fn truncated_point_is_an_error(p in arb_point(), cut in 0usize..1000) {
            let mut e = Encoder::default();
            e.point(&p);
            let cut = cut % e.buf.len();
            prop_assert!(Decoder::new(&e.buf[..cut]).point().is_err());
        }
    }
}
