//! Upsert (JSON and NDJSON), get and delete points.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use naksha_query::{Point, PointId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{blocking, body_bytes, json_response, parse_json, AppState};
use crate::bounded::Bounded;
use crate::error::{ApiError, ErrorBody};
use crate::ops::DeleteBody;
use crate::schema;
use crate::tenancy::Ctx;

/// A point to upsert.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointIn {
    /// Unsigned integer or string.
    #[schema(value_type = schema::PointId)]
    id: PointId,
    /// Dense vector of the collection's dimension; may be omitted when the
    /// collection has `embed` (the model fills it from `text`).
    vector: Option<Vec<f32>>,
    /// Text fields: `{"field": "text", ...}`.
    #[serde(default)]
    #[schema(value_type = Option<schema::TextFields>)]
    text: Bounded,
    /// Payload (a JSON object).
    #[serde(default)]
    #[schema(value_type = Option<schema::Payload>)]
    payload: Bounded,
}

/// A batch of points; `application/x-ndjson` bodies carry one [`PointIn`] per line instead.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"points": [
    {"id": 7, "text": {"title": "curl", "body": "transfer data with URLs"}, "payload": {"lang": "en"}},
    {"id": "doc-8", "text": {"title": "wget", "body": "download files"}, "payload": {"lang": "en", "year": 2024}}]}))]
pub struct UpsertBody {
    /// The batch; any bad point rejects it whole.
    points: Vec<PointIn>,
}

/// Result of an upsert.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpsertOut {
    /// Points written.
    pub upserted: usize,
    /// Sequence number of the (durable) batch.
    pub seq: u64,
}

/// A stored point.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PointOut {
    /// Id.
    #[schema(value_type = schema::PointId)]
    pub id: PointId,
    /// Stored vector (normalised for cosine).
    pub vector: Vec<f32>,
    /// Payload (`null` when the point has none).
    #[schema(value_type = Option<schema::Payload>)]
    pub payload: Value,
    /// Text fields, when the point has any.
    #[serde(skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Option<schema::TextFields>)]
    pub text: Value,
}

/// Number of points deleted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedCount {
    /// Points that existed and were deleted.
    pub deleted: usize,
}

impl PointIn {
    fn into_point(self) -> Point {
        // An omitted vector is filled by the collection's model, or refused by the engine.
        Point::new(self.id, self.vector.unwrap_or_default(), self.payload.0).with_text(self.text.0)
    }
}

/// The points of an upsert body: JSON `{"points": [...]}`, or NDJSON (one point
/// per line) when `content_type` says `application/x-ndjson`.
pub fn parse_points(content_type: Option<&str>, bytes: &[u8]) -> Result<Vec<Point>, ApiError> {
    Ok(parse_points_in(content_type, bytes)?.into_iter().map(PointIn::into_point).collect())
}

fn parse_points_in(content_type: Option<&str>, bytes: &[u8]) -> Result<Vec<PointIn>, ApiError> {
    let ndjson = content_type.is_some_and(|ct| ct.starts_with("application/x-ndjson"));
    if !ndjson {
        let body: UpsertBody = crate::ops::decode_json(bytes)?;
        return Ok(body.points);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ApiError::invalid(format!("NDJSON body is not UTF-8: {e}")))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| ApiError::invalid(format!("NDJSON line {}: {e}", i + 1))))
        .collect()
}

/// Insert or replace points (JSON or NDJSON); the reply comes once the batch is durable.
#[utoipa::path(post, path = "/v1/collections/{name}/points", tag = "points", operation_id = "upsert_points", params(("name" = String, Path)),
    request_body(content = UpsertBody, description = "application/json; or application/x-ndjson with one point object per line"),
    responses((status = 200, body = UpsertOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upsert(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(body, state.body_limit)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let points = parse_points(content_type, &bytes)?;
    blocking(move || {
        let (n, seq) = crate::ops::upsert_points(&ctx, &name, points)?;
        Ok(json_response(StatusCode::OK, &UpsertOut { upserted: n, seq }))
    })
    .await
}

/// A point id from a URL segment: digits are a numeric id, anything else a string id.
pub(super) fn parse_id(s: &str) -> PointId {
    s.parse::<u64>().map_or_else(|_| PointId::Str(s.to_owned()), PointId::Num)
}

/// How the id in a point's URL is read.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // documentation only: the handler reads the string and names a bad value
pub enum IdType {
    /// A string id, even when it is all digits.
    String,
    /// An unsigned 64-bit id.
    Number,
}

/// How to read the id in a point's URL.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IdQuery {
    /// `string` or `number`; by default an all-digit id is a number, anything else a string.
    #[param(value_type = Option<IdType>, inline)]
    id_type: Option<String>,
}

/// Fetch a point. An all-digit id is numeric, anything else a string id;
/// `?id_type=string` fetches a string id made of digits (`"777"`).
#[utoipa::path(get, path = "/v1/collections/{name}/points/{id}", tag = "points", operation_id = "get_point",
    params(("name" = String, Path), ("id" = String, Path, example = "1"), IdQuery),
    responses((status = 200, body = PointOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    Extension(ctx): Extension<Arc<Ctx>>,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<IdQuery>,
) -> Result<Response, ApiError> {
    let id = match q.id_type.as_deref() {
        None => parse_id(&id),
        Some("string") => PointId::Str(id),
        Some("number") => PointId::Num(
            id.parse().map_err(|_| ApiError::invalid(format!("id {id:?} is not an unsigned 64-bit number")))?,
        ),
        Some(other) => return Err(ApiError::invalid(format!("id_type {other:?}: expected \"string\" or \"number\""))),
    };
    blocking(move || {
        let c = ctx.collection(&name)?;
        match c.get(&id)? {
            Some(r) => {
                let out = PointOut { id: r.id, vector: r.vector, payload: r.payload, text: r.text };
                Ok(json_response(StatusCode::OK, &out))
            }
            None => Err(ApiError::not_found(format!("point {id} not found in collection {name:?}"))),
        }
    })
    .await
}

/// Delete points by id or by filter.
#[utoipa::path(post, path = "/v1/collections/{name}/points/delete", tag = "points", operation_id = "delete_points",
    params(("name" = String, Path)), request_body = DeleteBody,
    responses((status = 200, body = DeletedCount), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: DeleteBody = parse_json(body, state.body_limit)?;
    blocking(move || {
        let deleted = body.apply(&*ctx.collection(&name)?)?;
        Ok(json_response(StatusCode::OK, &DeletedCount { deleted }))
    })
    .await
}
