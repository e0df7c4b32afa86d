//! Naksha embedded: the whole database engine in your process, with no
//! network code. Open a data directory with [`Database::open`], create a
//! collection, upsert points, search.
//!
//! ```
//! use naksha::{Database, CollectionConfig, Metric, Point, SearchRequest, Filter};
//! use serde_json::json;
//! # fn main() -> naksha::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path())?;
//! let docs = db.create_collection("docs", CollectionConfig::new(2, Metric::L2))?;
//! docs.upsert(vec![
//!     Point::new(1.into(), vec![0.0, 0.0], json!({"lang": "en"})),
//!     Point::new(2.into(), vec![1.0, 1.0], json!({"lang": "de"})),
//! ])?;
//! let only_de = Filter::from_json(json!({"must": [{"key": "lang", "match": "de"}]}))?;
//! let hits = docs.search(&SearchRequest::new(vec![0.1, 0.1], 1).filter(only_de))?;
//! assert_eq!(hits[0].id, 2.into());
//! # Ok(()) }
//! ```
//!
//! The same API will gain a remote backend (gRPC) so code written against it
//! can move from embedded to client/server unchanged.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub use naksha_query::{
    Analyzer, AnalyzerKind, Collection, CollectionConfig, CollectionInfo, Database, EngineOptions, Error, FieldType,
    Filter, Fusion, HnswConfig, Metric, Mode, Point, PointId, Quantization, Record, Result, ScoredPoint, SearchRequest,
    TextLanguage, VectorsConfig,
};
/// Grounded answers with citations: `use naksha::Rag` and ask a collection
/// with an embedding model (`collection.rag(&RagRequest::new("question?"))`).
pub use naksha_rag::{Citation, GeneratorConfig, OpenAiConfig, Rag, RagAnswer, RagEvent, RagRequest};

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
