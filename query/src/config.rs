//! Collection configuration (stored in the manifest) and engine options.

use std::collections::BTreeMap;

use naksha_index::hnsw::{HnswParams, MAX_M};
use naksha_index::metric::Metric;
use naksha_index::payload::FieldType;
use naksha_index::quant::Quantization;
use naksha_index::segment::SegmentConfig;
use naksha_index::text::{Analyzer, TextConfig};
use serde::{Deserialize, Serialize};

use crate::planner::Planner;
use crate::{Error, Result};

/// Largest vector dimension accepted.
pub const MAX_DIM: usize = 65_536;

/// Graph parameters of a collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HnswConfig {
    /// Links per node (level 0 keeps `2m`).
    pub m: usize,
    /// Beam width while building.
    pub ef_construction: usize,
    /// Default beam width while searching.
    pub ef: usize,
}

impl Default for HnswConfig {
    fn default() -> Self {
        Self { m: 16, ef_construction: 200, ef: 128 }
    }
}

/// The vector space of a collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorsConfig {
    /// Dimension.
    pub dim: usize,
    /// Metric.
    pub metric: Metric,
    /// Graph parameters.
    #[serde(default)]
    pub hnsw: HnswConfig,
    /// Quantization of the graph walk.
    #[serde(default)]
    pub quantization: Quantization,
}

/// A collection's embedding model: which model fills vectors, from which text fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedConfig {
    /// Model name, as listed by [`naksha_embed::Models::list`].
    pub model: String,
    /// Text fields embedded (joined by a newline, in this order) when a point has no vector.
    pub fields: Vec<String>,
}

/// Configuration of a collection, fixed at creation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// The vector space.
    pub vectors: VectorsConfig,
    /// Payload keys (dotted paths) to index, with their type.
    #[serde(default)]
    pub payload_index: BTreeMap<String, FieldType>,
    /// Embedding model that fills vectors from text fields, and embeds text queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<EmbedConfig>,
    /// How documents are cut into chunks (default: 256 tokens, 32 overlapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunking: Option<naksha_embed::ChunkConfig>,
    /// Text fields indexed for BM25 (query modes `text` and `hybrid`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text_fields: Vec<String>,
    /// How `text_fields` are cut into terms (default: English, stop words, stemming).
    #[serde(default, skip_serializing_if = "is_default")]
    pub text_analyzer: Analyzer,
    /// Score multipliers per text field (default 1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub text_boosts: BTreeMap<String, f32>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl CollectionConfig {
    /// A configuration with default graph parameters and no payload index.
    pub fn new(dim: usize, metric: Metric) -> Self {
        Self {
            vectors: VectorsConfig { dim, metric, hnsw: HnswConfig::default(), quantization: Quantization::None },
            payload_index: BTreeMap::new(),
            embed: None,
            chunking: None,
            text_fields: Vec::new(),
            text_analyzer: Analyzer::default(),
            text_boosts: BTreeMap::new(),
        }
    }

    /// Builder-style: index `fields` for BM25 (text and hybrid search).
    pub fn with_text_fields(mut self, fields: &[&str]) -> Self {
        self.text_fields = fields.iter().map(|f| f.to_string()).collect();
        self
    }

    /// The BM25 index settings, when the collection has text fields.
    pub fn text_config(&self) -> Option<TextConfig> {
        (!self.text_fields.is_empty()).then(|| TextConfig {
            fields: self.text_fields.clone(),
            analyzer: self.text_analyzer,
            boosts: self.text_boosts.clone(),
        })
    }

    /// Builder-style: fill vectors from `fields` with `model`.
    pub fn with_embed(mut self, model: &str, fields: &[&str]) -> Self {
        self.embed =
            Some(EmbedConfig { model: model.to_owned(), fields: fields.iter().map(|f| f.to_string()).collect() });
        self
    }

    /// Builder-style: set the quantization.
    pub fn with_quantization(mut self, q: Quantization) -> Self {
        self.vectors.quantization = q;
        self
    }

    /// Builder-style: index a payload key.
    pub fn with_payload_index(mut self, key: &str, t: FieldType) -> Self {
        self.payload_index.insert(key.to_owned(), t);
        self
    }

    /// Reject out-of-range settings.
    pub fn validate(&self) -> Result<()> {
        let v = &self.vectors;
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(1..=MAX_DIM).contains(&v.dim) {
            return bad(format!("vectors.dim must be between 1 and {MAX_DIM}"));
        }
        if !(2..=MAX_M).contains(&v.hnsw.m) {
            return bad(format!("vectors.hnsw.m must be between 2 and {MAX_M}"));
        }
        if !(1..=4096).contains(&v.hnsw.ef_construction) || !(1..=4096).contains(&v.hnsw.ef) {
            return bad("vectors.hnsw.ef_construction and ef must be between 1 and 4096".into());
        }
        if self.payload_index.keys().any(|k| k.is_empty() || k.len() > crate::filter::MAX_KEY_LEN) {
            return bad("payload_index keys must be 1 to 256 bytes".into());
        }
        if let Some(e) = &self.embed {
            if e.model.is_empty() || e.fields.is_empty() || e.fields.iter().any(String::is_empty) {
                return bad("embed needs a model and at least one (non-empty) text field".into());
            }
        }
        match self.text_config() {
            Some(t) => t.validate()?,
            None if self.text_analyzer != Analyzer::default() || !self.text_boosts.is_empty() => {
                return bad("text_analyzer and text_boosts need text_fields".into());
            }
            None => {}
        }
        if let Some(c) = &self.chunking {
            c.validate().map_err(|e| Error::InvalidArgument(e.to_string()))?;
        }
        Ok(())
    }

    pub(crate) fn segment_config(&self) -> SegmentConfig {
        SegmentConfig {
            dim: self.vectors.dim,
            metric: self.vectors.metric,
            hnsw: HnswParams {
                m: self.vectors.hnsw.m,
                ef_construction: self.vectors.hnsw.ef_construction,
                ..HnswParams::default()
            },
            quantization: self.vectors.quantization,
            payload_index: self.payload_index.clone(),
            text: self.text_config(),
        }
    }
}

/// Engine tuning shared by every collection of a database.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Flush the mutable segment into an immutable one at this many points.
    pub flush_points: usize,
    /// Writers flush inline (back-pressure) past this many points in memory.
    pub max_memtable_points: usize,
    /// Flush (which trims the WAL) once the WAL exceeds this many bytes, even
    /// when few points are buffered (e.g. a delete-only workload).
    pub max_wal_bytes: u64,
    /// Merge when this many segments below `merge_max_points` exist.
    pub merge_min_segments: usize,
    /// Segments larger than this are not merged for size.
    pub merge_max_points: usize,
    /// Rewrite a segment once this fraction of it is deleted.
    pub merge_deleted_ratio: f64,
    /// Run flushes and merges on a background thread per collection.
    pub background: bool,
    /// Exact-scan vs graph choice.
    pub planner: Planner,
    /// How long [`crate::Database::open_with`] waits for another holder of the
    /// data directory's lock (a process that is exiting, or a just-forked child
    /// that has not yet closed its inherited descriptors) before giving up.
    pub lock_wait: std::time::Duration,
    /// Embedding models available to collections with `embed`.
    pub models: naksha_embed::Models,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            flush_points: 16_384,
            max_memtable_points: 65_536,
            max_wal_bytes: 256 << 20,
            merge_min_segments: 4,
            merge_max_points: 2_000_000,
            merge_deleted_ratio: 0.2,
            background: true,
            planner: Planner::default(),
            lock_wait: std::time::Duration::from_secs(2),
            models: naksha_embed::Models::empty(),
        }
    }
}
