//! `POST /v1/collections/{name}/query`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use naksha_query::{Filter, ScoredPoint, SearchRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{blocking, json_response, parse_json, AppState, ErrorBody};
use crate::error::ApiError;
use crate::ops;

fn default_limit() -> usize {
    10
}

fn yes() -> bool {
    true
}

/// A query.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    /// Query text: BM25 terms over `text_fields` (text, hybrid), and embedded with the
    /// collection's model for the vector side when no `vector` is given. BM25 syntax:
    /// words, `"phrases"`, `+required`, `-excluded`, `field:word`, `AND`/`OR`.
    text: Option<String>,
    /// Query vector.
    vector: Option<Vec<f32>>,
    /// `vector`, `text` (BM25) or `hybrid` (both, fused). Default: hybrid when both
    /// signals are available, else the one that is.
    mode: Option<String>,
    /// How `text` is read for BM25: `query` (default; the syntax above, errors are 400s) or
    /// `plain` (words only: any text is accepted, operators are ordinary characters).
    syntax: Option<String>,
    /// `{"must"|"should"|"must_not": [{"key", "match"|"in"|"range"|"exists"}, ...]}`.
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    /// Results (default 10; limit + offset at most 10,000).
    #[serde(default = "default_limit")]
    limit: usize,
    /// Results to skip.
    #[serde(default)]
    offset: usize,
    /// Beam width (default: the collection's).
    ef: Option<usize>,
    /// Search without the index (ground truth).
    #[serde(default)]
    exact: bool,
    /// Hybrid fusion: `{"method": "rrf", "k": 60}` (default) or
    /// `{"method": "weighted", "vector_weight": 0.7}` (scores min-max normalised per side).
    #[schema(value_type = Option<Object>)]
    fusion: Option<Value>,
    /// Return `highlights`: per text field, a fragment with matched terms in `<b>…</b>`.
    #[serde(default)]
    highlight: bool,
    /// Return payloads (default true).
    #[serde(default = "yes")]
    with_payload: bool,
    /// Return text fields.
    #[serde(default)]
    with_text: bool,
    /// Return stored vectors.
    #[serde(default)]
    with_vector: bool,
}

impl QueryBody {
    /// The engine's request; a malformed part (filter, fusion, mode, syntax) is a 400.
    pub fn into_request(self) -> Result<SearchRequest, ApiError> {
        let q = self;
        let mut req = ops::search_request(q.text, q.vector, q.mode.as_deref(), q.fusion, q.syntax.as_deref())?;
        req.filter = q.filter.map(Filter::from_json).transpose()?;
        req.limit = q.limit;
        req.offset = q.offset;
        req.ef = q.ef;
        req.exact = q.exact;
        req.with_payload = q.with_payload;
        req.with_vector = q.with_vector;
        req.with_text = q.with_text;
        req.highlight = q.highlight;
        Ok(req)
    }
}

/// Results, best first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueryOut {
    /// `{"id", "score", "payload"?, "vector"?, "text"?, "highlights"?}`. Score: vector mode, similarity
    /// for cosine/dot and distance for l2; text mode, BM25; hybrid, the fused score.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<ScoredPoint>,
    /// Server-side time in milliseconds.
    pub took_ms: f64,
}

/// Vector, full-text (BM25) or hybrid search, with optional filters applied to every side.
#[utoipa::path(post, path = "/v1/collections/{name}/query", tag = "query", params(("name" = String, Path)),
    request_body = QueryBody,
    responses((status = 200, body = QueryOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn query(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let q: QueryBody = parse_json(body, state.body_limit)?;
    let req = q.into_request()?;
    let db = state.db()?;
    blocking(move || {
        let results = db.collection(&name)?.search(&req)?;
        let took_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(json_response(StatusCode::OK, &QueryOut { results, took_ms }))
    })
    .await
}
