//! `POST /v1/collections/{name}/query`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use naksha_query::{Filter, SearchRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, json_response, parse_json, AppState};
use crate::error::ApiError;
use crate::ops;

fn default_limit() -> usize {
    10
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    text: Option<String>,
    vector: Option<Vec<f32>>,
    mode: Option<String>,
    filter: Option<Value>,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    offset: usize,
    ef: Option<usize>,
    #[serde(default)]
    exact: bool,
    fusion: Option<Value>,
    #[serde(default = "yes")]
    with_payload: bool,
    #[serde(default)]
    with_text: bool,
    #[serde(default)]
    with_vector: bool,
}

pub(super) async fn query(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let q: QueryBody = parse_json(body, state.body_limit)?;
    let text = q.text.is_some() || q.fusion.is_some() || q.with_text;
    let mode = if q.fusion.is_some() || q.with_text { Some("hybrid") } else { q.mode.as_deref() };
    let vector = ops::vector_query(&name, mode, text, q.vector)?;
    let filter = q.filter.map(Filter::from_json).transpose()?;
    let req = SearchRequest {
        vector,
        limit: q.limit,
        offset: q.offset,
        ef: q.ef,
        exact: q.exact,
        filter,
        with_payload: q.with_payload,
        with_vector: q.with_vector,
    };
    let db = state.db()?;
    blocking(move || {
        let hits = db.collection(&name)?.search(&req)?;
        let took_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(json_response(StatusCode::OK, json!({"results": hits, "took_ms": took_ms})))
    })
    .await
}
