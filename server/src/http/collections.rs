//! `PUT/GET/DELETE /v1/collections[/{name}]`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use naksha_query::{CollectionConfig, FieldType, VectorsConfig};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, json_response, parse_json, AppState};
use crate::error::ApiError;

/// The API's collection body. Text fields, embedding and chunking are part of
/// the contract but arrive with later milestones; until then they are refused
/// with a clear message rather than silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    vectors: Option<VectorsConfig>,
    #[serde(default)]
    text_fields: Vec<String>,
    embed: Option<Value>,
    chunking: Option<Value>,
    #[serde(default)]
    payload_index: BTreeMap<String, FieldType>,
}

fn config_json(c: &CollectionConfig) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: CreateBody = parse_json(body, state.body_limit)?;
    if !body.text_fields.is_empty() {
        return Err(ApiError::invalid("text_fields: full-text search is not enabled in this build yet"));
    }
    if body.embed.is_some() || body.chunking.is_some() {
        return Err(ApiError::invalid("embed/chunking: local embedding models are not available in this build yet"));
    }
    let vectors = body.vectors.ok_or_else(|| ApiError::invalid("vectors is required"))?;
    let config = CollectionConfig { vectors, payload_index: body.payload_index };
    let db = state.db()?;
    blocking(move || {
        let existed = db.collection(&name).is_ok();
        let c = db.create_collection(&name, config)?;
        let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
        Ok(json_response(status, json!({"name": name, "config": config_json(c.config())})))
    })
    .await
}

pub(super) async fn list(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let db = state.db()?;
    blocking(move || {
        let collections: Vec<Value> =
            db.list().into_iter().map(|(name, points)| json!({"name": name, "points": points})).collect();
        Ok(json_response(StatusCode::OK, json!({ "collections": collections })))
    })
    .await
}

pub(super) async fn info(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let db = state.db()?;
    blocking(move || {
        let c = db.collection(&name)?;
        let i = c.info();
        Ok(json_response(
            StatusCode::OK,
            json!({
                "name": name, "config": config_json(c.config()), "points": i.points, "segments": i.segments,
                "disk_bytes": i.disk_bytes, "memory_bytes": i.memory_bytes, "memtable_points": i.memtable_points,
                "wal_bytes": i.wal_bytes, "seq": i.seq,
            }),
        ))
    })
    .await
}

pub(super) async fn delete(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let db = state.db()?;
    blocking(move || {
        if db.delete_collection(&name)? {
            Ok(json_response(StatusCode::OK, json!({"deleted": true})))
        } else {
            Err(ApiError::not_found(format!("collection {name:?} not found")))
        }
    })
    .await
}
