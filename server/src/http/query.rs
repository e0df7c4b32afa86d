//! `POST /v1/collections/{name}/query`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use naksha_query::ScoredPoint;
use serde::Serialize;

use super::{blocking, json_response, parse_json, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::ops::QueryBody;
use crate::schema;

/// Results, best first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueryOut {
    /// The hits.
    #[schema(value_type = Vec<schema::ScoredPoint>)]
    pub results: Vec<ScoredPoint>,
    /// Server-side time in milliseconds.
    pub took_ms: f64,
}

/// Vector, full-text (BM25) or hybrid search, with optional filters applied to every side.
#[utoipa::path(post, path = "/v1/collections/{name}/query", tag = "query", operation_id = "query", params(("name" = String, Path)),
    request_body = QueryBody,
    responses((status = 200, body = QueryOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn query(
    State(state): State<Arc<AppState>>,
    axum::Extension(ctx): axum::Extension<Arc<crate::tenancy::Ctx>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let q: QueryBody = parse_json(body, state.body_limit)?;
    let req = q.into_request()?;
    blocking(move || {
        let results = crate::ops::search(&ctx, &name, &req)?;
        let took_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(json_response(StatusCode::OK, &QueryOut { results, took_ms }))
    })
    .await
}
