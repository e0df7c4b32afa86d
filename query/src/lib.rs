//! Naksha's query layer and collection engine.
//!
//! Start at [`Database`]: open a data directory, create or open a
//! [`Collection`], then [`Collection::upsert`], [`Collection::delete`],
//! [`Collection::get`] and [`Collection::search`]. Filters ([`Filter`]) are
//! planned per segment ([`planner`]): exact scan over the candidates when they
//! are few, a filtered graph walk otherwise.
//!
//! ```
//! use naksha_query::{Database, CollectionConfig, SearchRequest, Metric, Point};
//! # fn main() -> naksha_query::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path())?;
//! let docs = db.create_collection("docs", CollectionConfig::new(3, Metric::Cosine))?;
//! docs.upsert(vec![
//!     Point::new(1.into(), vec![1.0, 0.0, 0.0], serde_json::json!({"lang": "en"})),
//!     Point::new("b".into(), vec![0.0, 1.0, 0.0], serde_json::json!({"lang": "de"})),
//! ])?;
//! let hits = docs.search(&SearchRequest::new(vec![0.9, 0.1, 0.0], 1))?;
//! assert_eq!(hits[0].id, 1.into());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod collection;
pub mod config;
pub mod database;
mod error;
pub mod filter;
pub mod hybrid;
pub mod planner;
pub mod snapshot;

pub use collection::{
    Collection, CollectionInfo, Document, DocumentsWritten, HealthStatus, Metrics, Record, ScoredPoint, SearchRequest,
};
pub use config::{CollectionConfig, EmbedConfig, EngineOptions, HnswConfig, VectorsConfig};
pub use database::Database;
pub use error::{Error, ErrorKind, Result};
pub use filter::Filter;
pub use hybrid::{Fusion, Mode};
pub use naksha_embed as embed;
/// The distance kernels' inner product (SIMD where the CPU has it), for
/// callers comparing the vectors a search returns.
pub use naksha_index::distance::dot;
pub use naksha_index::metric::Metric;
pub use naksha_index::payload::FieldType;
pub use naksha_index::quant::Quantization;
pub use naksha_index::text::{Analyzer, AnalyzerKind, Syntax, TextLanguage};
pub use naksha_storage::point::{Point, PointId};
pub use snapshot::{ArchiveManifest, Restored, SnapshotInfo};
