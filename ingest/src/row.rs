//! Rows as sources read them, and the mapping that turns a row into a point
//! or a document.

use naksha_query::{Document, Point, PointId};
use serde_json::{Map, Value};

use crate::spec::Mapping;

/// One row: its fields as JSON, and the mapped vector when the source decoded
/// it directly (Arrow fixed-size lists: no JSON round trip).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// Field values.
    pub fields: Map<String, Value>,
    /// The `mapping.vector` column, already decoded.
    pub vector: Option<Vec<f32>>,
}

/// A row as read, or why it could not be: a bad line, a bad value.
pub type RowResult = std::result::Result<Row, String>;

/// A row with the label errors name it by (`line 12`, `row 7`, `id 42`).
#[derive(Clone, Debug)]
pub struct Labeled {
    /// Where it came from.
    pub label: String,
    /// The row.
    pub row: RowResult,
}

/// What a row becomes.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A point (embedded by the collection's model when it has no vector).
    Point(Point),
    /// A document, cut into chunks.
    Document(Document),
}

impl Item {
    /// The point id (a document's first chunk is `{id}#0`).
    pub fn id(&self) -> PointId {
        match self {
            Item::Point(p) => p.id.clone(),
            Item::Document(d) => PointId::Str(d.id.clone()),
        }
    }
}

/// The id a JSON value names: a non-negative integer or a non-empty string.
pub fn point_id(v: &Value) -> Option<PointId> {
    match v {
        Value::Number(n) => n.as_u64().map(PointId::Num),
        Value::String(s) if !s.is_empty() => Some(PointId::Str(s.clone())),
        _ => None,
    }
}

/// A vector from JSON: an array of numbers, or text such as `[1,2]` (pgvector)
/// or `{1,2}` (a Postgres array) or `1,2`.
pub fn vector_of(v: &Value) -> std::result::Result<Vec<f32>, String> {
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| x.as_f64().map(|f| f as f32).ok_or_else(|| format!("element {i} is not a number: {x}")))
            .collect(),
        Value::String(s) => {
            let inner = s.trim().trim_start_matches(['[', '{']).trim_end_matches([']', '}']);
            if inner.trim().is_empty() {
                return Ok(Vec::new());
            }
            inner
                .split(',')
                .enumerate()
                .map(|(i, x)| {
                    x.trim().parse::<f32>().map_err(|_| format!("element {i} is not a number: {:?}", x.trim()))
                })
                .collect()
        }
        other => Err(format!("expected an array of numbers, got {other}")),
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

impl Mapping {
    /// Turn a row into a point or document; `extra` is merged into the payload
    /// (object metadata of S3 sources).
    pub fn apply(&self, mut row: Row, extra: Option<&Map<String, Value>>) -> std::result::Result<Item, String> {
        let id = match row.fields.get(&self.id) {
            None | Some(Value::Null) => return Err(format!("missing id field {:?}", self.id)),
            Some(v) => point_id(v).ok_or_else(|| {
                format!("id field {:?} must be a non-negative integer or a non-empty string, got {v}", self.id)
            })?,
        };
        let mut payload = Map::new();
        for f in &self.payload {
            if let Some(v) = row.fields.get(f) {
                payload.insert(f.clone(), v.clone());
            }
        }
        if let Some(extra) = extra {
            payload.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if self.chunk {
            let parts: Vec<String> = self.text.iter().filter_map(|f| row.fields.get(f).and_then(text_of)).collect();
            let text = parts.join("\n\n");
            if text.trim().is_empty() {
                return Err(format!("document {id}: the text fields {:?} are empty", self.text));
            }
            let doc_id = match id {
                PointId::Num(n) => n.to_string(),
                PointId::Str(s) => s,
            };
            let title = self.title.as_ref().and_then(|f| row.fields.get(f)).and_then(text_of);
            return Ok(Item::Document(Document { id: doc_id, text, title, payload: Value::Object(payload) }));
        }
        let mut text = Map::new();
        for f in &self.text {
            if let Some(t) = row.fields.get(f).and_then(text_of) {
                text.insert(f.clone(), Value::String(t));
            }
        }
        let vector = match (&self.vector, row.vector.take()) {
            (None, _) => Vec::new(),
            (Some(_), Some(v)) => v,
            (Some(f), None) => match row.fields.get(f) {
                None | Some(Value::Null) => return Err(format!("point {id}: vector field {f:?} is missing")),
                Some(v) => vector_of(v).map_err(|e| format!("point {id}: vector field {f:?}: {e}"))?,
            },
        };
        let as_json = |m: Map<String, Value>| if m.is_empty() { Value::Null } else { Value::Object(m) };
        Ok(Item::Point(Point { id, vector, payload: as_json(payload), text: as_json(text) }))
    }
}

/// A CSV cell as JSON: integers, decimals and booleans as such, empty as null, else text.
pub fn infer(cell: &str) -> Value {
    if cell.is_empty() {
        return Value::Null;
    }
    if let Ok(i) = cell.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(u) = cell.parse::<u64>() {
        return Value::from(u);
    }
    if cell.contains(['.', 'e', 'E']) && !cell.contains(|c: char| c.is_alphabetic() && !matches!(c, 'e' | 'E')) {
        if let Ok(f) = cell.parse::<f64>() {
            if f.is_finite() {
                return Value::from(f);
            }
        }
    }
    match cell {
        "true" | "TRUE" | "True" => Value::Bool(true),
        "false" | "FALSE" | "False" => Value::Bool(false),
        _ => Value::String(cell.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(v: Value) -> Row {
        Row { fields: v.as_object().unwrap().clone(), vector: None }
    }

    #[test]
    fn rows_become_points() {
        let m = Mapping {
            id: "id".into(),
            text: vec!["title".into()],
            payload: vec!["lang".into(), "price".into()],
            vector: Some("v".into()),
            ..Mapping::default()
        };
        let item = m.apply(row(json!({"id": 7, "title": "Hi", "lang": "en", "v": "[1, 2.5]", "x": 1})), None).unwrap();
        let Item::Point(p) = item else { panic!() };
        assert_eq!(p.id, PointId::Num(7));
        assert_eq!(p.vector, vec![1.0, 2.5]);
        assert_eq!(p.payload, json!({"lang": "en"}));
        assert_eq!(p.text, json!({"title": "Hi"}));
        let e = m.apply(row(json!({"title": "x", "v": [1]})), None).unwrap_err();
        assert!(e.contains("missing id"), "{e}");
        let e = m.apply(row(json!({"id": -1, "v": [1]})), None).unwrap_err();
        assert!(e.contains("non-negative"), "{e}");
        let e = m.apply(row(json!({"id": "a", "v": ["x"]})), None).unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        assert_eq!(vector_of(&json!("{1,2}")).unwrap(), vec![1.0, 2.0]);
    }

    #[test]
    fn chunked_rows_become_documents() {
        let m = Mapping {
            id: "id".into(),
            text: vec!["a".into(), "b".into()],
            chunk: true,
            title: Some("t".into()),
            ..Mapping::default()
        };
        let mut extra = Map::new();
        extra.insert("s3".into(), json!({"key": "k"}));
        let Item::Document(d) = m.apply(row(json!({"id": 3, "a": "one", "b": "two", "t": "T"})), Some(&extra)).unwrap()
        else {
            panic!()
        };
        assert_eq!((d.id.as_str(), d.text.as_str(), d.title.as_deref()), ("3", "one\n\ntwo", Some("T")));
        assert_eq!(d.payload, json!({"s3": {"key": "k"}}));
        assert!(m.apply(row(json!({"id": 3})), None).is_err());
    }

    #[test]
    fn csv_cells_are_inferred() {
        assert_eq!(infer("12"), json!(12));
        assert_eq!(infer("1.5"), json!(1.5));
        assert_eq!(infer("1e3"), json!(1000.0));
        assert_eq!(infer("true"), json!(true));
        assert_eq!(infer(""), Value::Null);
        assert_eq!(infer("nan"), json!("nan"));
        assert_eq!(infer("Infinity"), json!("Infinity"));
        assert_eq!(infer("abc.e"), json!("abc.e"));
    }
}
