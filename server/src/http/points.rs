//! Upsert (JSON and NDJSON), get and delete points.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use naksha_query::{Filter, Point, PointId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, body_bytes, json_response, parse_json, AppState};
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointIn {
    id: PointId,
    vector: Option<Vec<f32>>,
    text: Option<Value>,
    #[serde(default)]
    payload: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertBody {
    points: Vec<PointIn>,
}

impl PointIn {
    fn into_point(self) -> Result<Point, ApiError> {
        if self.text.is_some() {
            return Err(ApiError::invalid(format!("point {}: text fields are not enabled in this build yet", self.id)));
        }
        let vector = self.vector.ok_or_else(|| {
            ApiError::invalid(format!("point {}: vector is required (the collection has no embedding model)", self.id))
        })?;
        Ok(Point::new(self.id, vector, self.payload))
    }
}

fn parse_points(headers: &HeaderMap, bytes: &[u8]) -> Result<Vec<PointIn>, ApiError> {
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-ndjson"));
    if !ndjson {
        let body: UpsertBody =
            serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))?;
        return Ok(body.points);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ApiError::invalid(format!("NDJSON body is not UTF-8: {e}")))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| ApiError::invalid(format!("NDJSON line {}: {e}", i + 1))))
        .collect()
}

pub(super) async fn upsert(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(body, state.body_limit)?;
    let points = parse_points(&headers, &bytes)?.into_iter().map(PointIn::into_point).collect::<Result<Vec<_>, _>>()?;
    let db = state.db()?;
    blocking(move || {
        let c = db.collection(&name)?;
        let n = points.len();
        let seq = c.upsert(points)?;
        Ok(json_response(StatusCode::OK, json!({"upserted": n, "seq": seq})))
    })
    .await
}

/// A point id from a URL segment: digits are a numeric id, anything else a string id.
pub(super) fn parse_id(s: &str) -> PointId {
    s.parse::<u64>().map_or_else(|_| PointId::Str(s.to_owned()), PointId::Num)
}

pub(super) async fn get(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let db = state.db()?;
    blocking(move || {
        let c = db.collection(&name)?;
        let id = parse_id(&id);
        match c.get(&id)? {
            Some(r) => Ok(json_response(StatusCode::OK, json!({"id": r.id, "vector": r.vector, "payload": r.payload}))),
            None => Err(ApiError::not_found(format!("point {id} not found in collection {name:?}"))),
        }
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    ids: Option<Vec<PointId>>,
    filter: Option<Value>,
}

pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: DeleteBody = parse_json(body, state.body_limit)?;
    let db = state.db()?;
    blocking(move || {
        let c = db.collection(&name)?;
        let deleted = match (body.ids, body.filter) {
            (Some(ids), None) => c.delete(ids)?,
            (None, Some(f)) => c.delete_where(&Filter::from_json(f)?)?,
            _ => return Err(ApiError::invalid("give exactly one of \"ids\" or \"filter\"")),
        };
        Ok(json_response(StatusCode::OK, json!({ "deleted": deleted })))
    })
    .await
}
