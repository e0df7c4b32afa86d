//! JSON values from clients, parsed with a budget: payloads and text fields
//! are read through [`Bounded`], which stops at [`MAX_NODES`] values or
//! [`MAX_DEPTH`] levels *while parsing*. A plain `serde_json::Value` parse of a
//! 60 MB array of numbers allocates ~1 GB before any limit can be checked; this
//! one gives up after a few megabytes. The engine then applies its exact
//! per-point limits ([`naksha_query::Point`] payload bytes and depth).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Most JSON values (scalars, arrays, objects, counting each) in one payload or
/// one set of text fields: about what fits in the engine's 1 MiB payload limit.
pub const MAX_NODES: usize = 1 << 19;
/// Deepest nesting read (the engine allows 32).
pub const MAX_DEPTH: usize = 64;

/// A JSON value parsed within the budget above.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Bounded(pub Value);

struct Budget {
    nodes: Cell<usize>,
}

struct Seed<'b> {
    budget: &'b Budget,
    depth: usize,
}

impl<'b> Seed<'b> {
    fn spend<E: de::Error>(&self) -> Result<(), E> {
        let n = self.budget.nodes.get() + 1;
        if n > MAX_NODES {
            return Err(E::custom(format!("more than {MAX_NODES} JSON values in one payload")));
        }
        if self.depth > MAX_DEPTH {
            return Err(E::custom(format!("JSON nested deeper than {MAX_DEPTH} levels")));
        }
        self.budget.nodes.set(n);
        Ok(())
    }

    fn child(&self) -> Seed<'b> {
        Seed { budget: self.budget, depth: self.depth + 1 }
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.spend()?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self.child())? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self.child())?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

impl<'de> serde::Deserialize<'de> for Bounded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let budget = Budget { nodes: Cell::new(0) };
        Seed { budget: &budget, depth: 0 }.deserialize(d).map(Bounded)
    }
}

/// Parse `text` as one bounded JSON value.
pub fn parse(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<Bounded>(text).map(|b| b.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_within_the_budget_parse_as_serde_json_does() {
        let text = r#"{"a": [1, -2, 3.5, "x", null, true, {"b": {"c": []}}], "d": 18446744073709551615}"#;
        assert_eq!(parse(text).unwrap(), serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn huge_or_deep_values_stop_early() {
        let many = format!("[{}1]", "1,".repeat(MAX_NODES));
        assert!(parse(&many).unwrap_err().to_string().contains("JSON values"));
        let deep = format!("{}1{}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
        assert!(parse(&deep).is_err());
    }
}
