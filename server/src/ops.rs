//! Request handling shared by the HTTP and gRPC front ends, so both refuse and
//! accept exactly the same things.

use std::collections::BTreeMap;
use std::sync::Arc;

use naksha_query::{Collection, CollectionConfig, Database, FieldType, VectorsConfig};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// The API's collection body. Text fields, embedding and chunking are part of
/// the contract but arrive with later milestones; until then they are refused
/// with a clear message rather than silently ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// `{"dim", "metric": "cosine"|"dot"|"l2", "hnsw": {"m", "ef_construction", "ef"}, "quantization": "none"|"int8"}`.
    #[schema(value_type = Object)]
    vectors: Option<VectorsConfig>,
    /// Reserved: full-text search (refused until it lands).
    #[serde(default)]
    text_fields: Vec<String>,
    /// Reserved: embedding model (refused until it lands).
    #[schema(value_type = Option<Object>)]
    embed: Option<Value>,
    /// Reserved: chunking (refused until it lands).
    #[schema(value_type = Option<Object>)]
    chunking: Option<Value>,
    /// Payload keys to index: `keyword`, `integer`, `float` or `bool`.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    payload_index: BTreeMap<String, FieldType>,
}

/// Decode a JSON request body; the parser's message names the problem.
pub fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))
}

/// Parse a collection body (JSON bytes) into an engine configuration.
pub fn collection_config(json: &[u8]) -> Result<CollectionConfig, ApiError> {
    let body: CreateBody = decode_json(json)?;
    if !body.text_fields.is_empty() {
        return Err(ApiError::invalid("text_fields: full-text search is not enabled in this build yet"));
    }
    if body.embed.is_some() || body.chunking.is_some() {
        return Err(ApiError::invalid("embed/chunking: local embedding models are not available in this build yet"));
    }
    let vectors = body.vectors.ok_or_else(|| ApiError::invalid("vectors is required"))?;
    Ok(CollectionConfig { vectors, payload_index: body.payload_index })
}

/// Create (or find, with an identical config) a collection; also says whether it was created.
pub fn create_collection(
    db: &Database,
    name: &str,
    config: CollectionConfig,
) -> Result<(Arc<Collection>, bool), ApiError> {
    let existed = db.collection(name).is_ok();
    let c = db.create_collection(name, config)?;
    Ok((c, !existed))
}

/// The configuration as API JSON.
pub fn config_json(c: &CollectionConfig) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

/// Check the query mode and return the query vector. Text and hybrid modes
/// are refused until full-text search lands.
pub fn vector_query(
    collection: &str,
    mode: Option<&str>,
    text: bool,
    vector: Option<Vec<f32>>,
) -> Result<Vec<f32>, ApiError> {
    let text_off = || ApiError::invalid(format!("text search is not enabled for collection {collection:?}"));
    match mode {
        None | Some("") | Some("vector") => {}
        Some("text") | Some("hybrid") => return Err(text_off()),
        Some(other) => return Err(ApiError::invalid(format!("mode must be vector, text or hybrid, not {other:?}"))),
    }
    match (vector, text) {
        (Some(v), _) => Ok(v),
        (None, true) => Err(text_off()),
        (None, false) => Err(ApiError::invalid("give a query \"vector\"")),
    }
}
