//! Request handling shared by the HTTP and gRPC front ends, so both refuse and
//! accept exactly the same things.

use std::collections::BTreeMap;
use std::sync::Arc;

use naksha_query::embed::{ChunkConfig, Models};
use naksha_query::{
    Analyzer, Collection, CollectionConfig, Database, EmbedConfig, FieldType, Filter, Fusion, GeneratorConfig,
    HnswConfig, Metric, Mode, Quantization, RagRequest, SearchRequest, Syntax, VectorsConfig,
};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// The vector space in a collection body; with `embed`, `dim` (the model's) and
/// `metric` (cosine) may be omitted.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VectorsBody {
    dim: Option<usize>,
    #[schema(value_type = Option<String>)]
    metric: Option<Metric>,
    #[schema(value_type = Option<Object>)]
    hnsw: Option<HnswConfig>,
    #[schema(value_type = Option<String>)]
    quantization: Option<Quantization>,
}

/// The API's collection body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// `{"dim", "metric": "cosine"|"dot"|"l2", "hnsw": {"m", "ef_construction", "ef"}, "quantization": "none"|"int8"}`.
    vectors: Option<VectorsBody>,
    /// Text fields indexed for BM25 (query modes `text` and `hybrid`).
    #[serde(default)]
    text_fields: Vec<String>,
    /// `{"kind": "language"|"simple"|"whitespace", "language": "english", "stop_words": true, "stemming": true}`.
    #[schema(value_type = Option<Object>)]
    text_analyzer: Option<Analyzer>,
    /// Score multiplier per text field, e.g. `{"title": 2.0}`.
    #[serde(default)]
    text_boosts: BTreeMap<String, f32>,
    /// `{"model": "all-minilm-l6-v2", "fields": ["title", "body"]}`: fill vectors from these text fields.
    #[schema(value_type = Option<Object>)]
    embed: Option<EmbedConfig>,
    /// `{"max_tokens": 256, "overlap_tokens": 32}` for the documents endpoint.
    #[schema(value_type = Option<Object>)]
    chunking: Option<ChunkConfig>,
    /// Payload keys to index: `keyword`, `integer`, `float` or `bool`.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    payload_index: BTreeMap<String, FieldType>,
}

/// Decode a JSON request body; the parser's message names the problem.
pub fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))
}

/// Parse a collection body (JSON bytes) into an engine configuration; `models`
/// supplies the dimension of an `embed` model when `vectors.dim` is omitted.
pub fn collection_config(json: &[u8], models: &Models) -> Result<CollectionConfig, ApiError> {
    let body: CreateBody = decode_json(json)?;
    let v = match (body.vectors, &body.embed) {
        (Some(v), _) => v,
        (None, Some(_)) => VectorsBody::default(),
        (None, None) => return Err(ApiError::invalid("vectors is required (or embed, to take the model's)")),
    };
    let dim = match (v.dim, &body.embed) {
        (Some(d), _) => d,
        (None, Some(e)) => models.get(&e.model).map_err(naksha_query::Error::from)?.dim(),
        (None, None) => return Err(ApiError::invalid("vectors.dim is required")),
    };
    let metric = match (v.metric, &body.embed) {
        (Some(m), _) => m,
        (None, Some(_)) => Metric::Cosine,
        (None, None) => return Err(ApiError::invalid("vectors.metric is required")),
    };
    let vectors = VectorsConfig {
        dim,
        metric,
        hnsw: v.hnsw.unwrap_or_default(),
        quantization: v.quantization.unwrap_or_default(),
    };
    Ok(CollectionConfig {
        vectors,
        payload_index: body.payload_index,
        embed: body.embed,
        chunking: body.chunking,
        text_fields: body.text_fields,
        text_analyzer: body.text_analyzer.unwrap_or_default(),
        text_boosts: body.text_boosts,
    })
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

/// The signal part of a search (query text and vector, mode, fusion) from an
/// API request; the caller sets paging and what to return. Whether the
/// collection can serve the mode is checked by the engine.
pub fn search_request(
    text: Option<String>,
    vector: Option<Vec<f32>>,
    mode: Option<&str>,
    fusion: Option<Value>,
    syntax: Option<&str>,
) -> Result<SearchRequest, ApiError> {
    let syntax = match syntax {
        None | Some("") => Syntax::Query,
        Some(s) => s.parse::<Syntax>().map_err(|e| ApiError::invalid(e.to_string()))?,
    };
    let mode = match mode {
        None | Some("") => None,
        Some(m) => Some(m.parse::<Mode>()?),
    };
    let fusion = match fusion {
        None | Some(Value::Null) => Fusion::default(),
        Some(f) => serde_json::from_value(f).map_err(|e| {
            ApiError::invalid(format!(
                "fusion: {e} (expected {{\"method\": \"rrf\", \"k\": 60}} or {{\"method\": \"weighted\", \"vector_weight\": 0.7}})"
            ))
        })?,
    };
    let text = match (text, &vector) {
        (Some(t), None) if t.trim().is_empty() => return Err(ApiError::invalid("query text is empty")),
        (None, None) => return Err(ApiError::invalid("give a query \"vector\" or \"text\"")),
        (t, _) => t,
    };
    let mut req = SearchRequest::new(vector.unwrap_or_default(), 10);
    req.text = text;
    req.mode = mode;
    req.fusion = fusion;
    req.syntax = syntax;
    Ok(req)
}

/// A RAG request from the API's fields; `generator` is JSON in the HTTP shape.
/// An `openai` generator may only call hosts in `allowed_hosts` (`*`: any), so a
/// client cannot point the server, and the API key it holds, at a host of its choosing.
pub fn rag_request(
    question: String,
    limit: usize,
    max_context_tokens: usize,
    filter: Value,
    generator: Value,
    allowed_hosts: &[String],
) -> Result<RagRequest, ApiError> {
    let generator = match generator {
        Value::Null => GeneratorConfig::default(),
        g => serde_json::from_value(g).map_err(|e| ApiError::invalid(format!("generator: {e}")))?,
    };
    if let GeneratorConfig::Openai(o) = &generator {
        let host = o.host();
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h),
        };
        if !allowed_hosts.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(name)) {
            return Err(ApiError::invalid(format!(
                "generator: host {name:?} is not in the server's server.generator_hosts ({allowed_hosts:?})"
            )));
        }
    }
    let filter = match filter {
        Value::Null => None,
        f => Some(Filter::from_json(f)?),
    };
    // Checked by the engine (`Collection::rag`, or `check_rag` before a stream).
    Ok(RagRequest { question, limit, max_context_tokens, filter, generator })
}

/// Most texts one `embed` call takes.
pub const MAX_EMBED_INPUTS: usize = 2048;

/// Embed `input` with `model`: returns the dimension and one vector per text.
/// Blocking (run it on the blocking pool).
pub fn embed(models: &Models, model: &str, input: &[String]) -> Result<(usize, Vec<Vec<f32>>), ApiError> {
    if input.is_empty() || input.len() > MAX_EMBED_INPUTS {
        return Err(ApiError::invalid(format!("input must hold 1 to {MAX_EMBED_INPUTS} texts, not {}", input.len())));
    }
    let m = models.get(model)?;
    let refs: Vec<&str> = input.iter().map(String::as_str).collect();
    Ok((m.dim(), m.embed(&refs)?))
}
