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
    /// Query text: embedded with the collection's model (vector mode) when no `vector` is given.
    text: Option<String>,
    /// Query vector.
    vector: Option<Vec<f32>>,
    /// `vector` (default); `text` and `hybrid` arrive with full-text search.
    mode: Option<String>,
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
    /// Reserved: hybrid fusion.
    #[schema(value_type = Option<Object>)]
    fusion: Option<Value>,
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

/// Results, best first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueryOut {
    /// `{"id", "score", "payload"?, "vector"?, "text"?}`; score is similarity for cosine/dot, distance for l2.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<ScoredPoint>,
    /// Server-side time in milliseconds.
    pub took_ms: f64,
}

/// Nearest neighbours of a vector (or of a text, embedded by the collection's model), with optional filters.
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
    let mode = if q.fusion.is_some() { Some("hybrid") } else { q.mode.as_deref() };
    let (vector, text) = ops::vector_query(&name, mode, q.text, q.vector)?;
    let filter = q.filter.map(Filter::from_json).transpose()?;
    let req = SearchRequest {
        vector,
        text,
        limit: q.limit,
        offset: q.offset,
        ef: q.ef,
        exact: q.exact,
        filter,
        with_payload: q.with_payload,
        with_vector: q.with_vector,
        with_text: q.with_text,
    };
    let db = state.db()?;
    blocking(move || {
        let results = db.collection(&name)?.search(&req)?;
        let took_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(json_response(StatusCode::OK, &QueryOut { results, took_ms }))
    })
    .await
}
