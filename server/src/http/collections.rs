//! `PUT/GET/DELETE /v1/collections[/{name}]`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde::Serialize;
use serde_json::Value;

use super::{blocking, json_response, parse_json, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::ops::{self, config_json, CreateBody};
use crate::schema;
use crate::tenancy::Ctx;

/// A collection and its stored configuration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CollectionOut {
    /// Name.
    pub name: String,
    /// Stored configuration.
    #[schema(value_type = schema::CollectionConfig)]
    pub config: Value,
}

/// One entry of the collection list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CollectionSummary {
    /// Name.
    pub name: String,
    /// Live points.
    pub points: usize,
}

/// All collections.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CollectionList {
    /// Collections, by name.
    pub collections: Vec<CollectionSummary>,
}

/// A collection's configuration, sizes and counts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CollectionDetails {
    /// Name.
    pub name: String,
    /// Stored configuration.
    #[schema(value_type = schema::CollectionConfig)]
    pub config: Value,
    /// Live points.
    pub points: usize,
    /// Immutable segments.
    pub segments: usize,
    /// Bytes on disk (segments and WAL).
    pub disk_bytes: u64,
    /// Bytes needed in memory for fast search.
    pub memory_bytes: u64,
    /// Points in the mutable segment.
    pub memtable_points: usize,
    /// WAL bytes.
    pub wal_bytes: u64,
    /// Last applied write sequence number.
    pub seq: u64,
    /// `ok`, `degraded` (background flushes or merges failing, retried with
    /// back-off) or `read_only` (a WAL fsync failed: restart to recover).
    #[schema(value_type = schema::HealthStatus)]
    pub status: naksha_query::HealthStatus,
    /// What is failing, when `status` is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether something was deleted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    /// Always true on success.
    pub deleted: bool,
}

/// Create a collection (201), or confirm one with the same configuration (200).
#[utoipa::path(put, path = "/v1/collections/{name}", tag = "collections", operation_id = "create_collection",
    params(("name" = String, Path, description = "1-64 of [A-Za-z0-9_-]")),
    request_body = CreateBody,
    responses((status = 201, body = CollectionOut), (status = 200, body = CollectionOut),
              (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let db = ctx.db()?;
    let config = ops::collection_config(parse_json::<CreateBody>(body, state.body_limit)?, db.models())?;
    blocking(move || {
        let (c, created) = ctx.create_collection(&name, config)?;
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok(json_response(status, &CollectionOut { name, config: config_json(c.config()) }))
    })
    .await
}

/// List collections with their point counts.
#[utoipa::path(get, path = "/v1/collections", tag = "collections", operation_id = "list_collections", responses((status = 200, body = CollectionList)))]
pub async fn list(Extension(ctx): Extension<Arc<Ctx>>) -> Result<Response, ApiError> {
    let db = ctx.db()?;
    blocking(move || {
        let collections = db
            .list()
            .into_iter()
            .filter(|(name, _)| ctx.visible(name))
            .map(|(name, points)| CollectionSummary { name, points })
            .collect();
        Ok(json_response(StatusCode::OK, &CollectionList { collections }))
    })
    .await
}

/// A collection's configuration and sizes.
#[utoipa::path(get, path = "/v1/collections/{name}", tag = "collections", operation_id = "get_collection", params(("name" = String, Path)),
    responses((status = 200, body = CollectionDetails), (status = 404, body = ErrorBody)))]
pub async fn info(Extension(ctx): Extension<Arc<Ctx>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    blocking(move || {
        let c = ctx.collection(&name)?;
        let i = c.info();
        Ok(json_response(
            StatusCode::OK,
            &CollectionDetails {
                name,
                config: config_json(c.config()),
                points: i.points,
                segments: i.segments,
                disk_bytes: i.disk_bytes,
                memory_bytes: i.memory_bytes,
                memtable_points: i.memtable_points,
                wal_bytes: i.wal_bytes,
                seq: i.seq,
                status: i.status,
                error: i.error,
            },
        ))
    })
    .await
}

/// Delete a collection and its data.
#[utoipa::path(delete, path = "/v1/collections/{name}", tag = "collections", operation_id = "delete_collection", params(("name" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody)))]
pub async fn delete(Extension(ctx): Extension<Arc<Ctx>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    blocking(move || {
        ctx.collection(&name)?;
        if ctx.db()?.delete_collection(&name)? {
            Ok(json_response(StatusCode::OK, &Deleted { deleted: true }))
        } else {
            Err(ApiError::not_found(format!("collection {name:?} not found")))
        }
    })
    .await
}
