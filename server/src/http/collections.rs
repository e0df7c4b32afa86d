//! `PUT/GET/DELETE /v1/collections[/{name}]`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{blocking, body_bytes, json_response, AppState};
use crate::error::ApiError;
use crate::ops::{self, config_json};

pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let config = ops::collection_config(&body_bytes(body, state.body_limit)?)?;
    let db = state.db()?;
    blocking(move || {
        let (c, created) = ops::create_collection(&db, &name, config)?;
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
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
