//! Embeddings and documents: `GET /v1/models`, `POST /v1/embed`,
//! `POST /v1/collections/{name}/documents[/delete]`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use naksha_query::Document;
use serde::{Deserialize, Serialize};

use super::{blocking, json_response, parse_json, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::tenancy::Ctx;
use crate::{ops, schema};

/// One installed model.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelOut {
    /// Name (its folder in the models directory).
    pub name: String,
    /// Output dimension.
    pub dim: usize,
    /// Longest input in tokens; longer input is truncated.
    pub max_tokens: usize,
    /// `cpu`, `cpu-f32` or `cuda:N`.
    pub device: String,
}

/// Installed models.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// By name.
    pub models: Vec<ModelOut>,
}

/// The embedding models the server loaded at start-up.
#[utoipa::path(get, path = "/v1/models", tag = "embeddings", operation_id = "list_models", responses((status = 200, body = ModelList)))]
pub async fn models(Extension(ctx): Extension<Arc<Ctx>>) -> Result<Response, ApiError> {
    let db = ctx.db()?;
    let models = db
        .models()
        .list()
        .into_iter()
        .map(|m| ModelOut { name: m.name, dim: m.dim, max_tokens: m.max_tokens, device: m.device })
        .collect();
    Ok(json_response(StatusCode::OK, &ModelList { models }))
}

/// Texts to embed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"model": "all-minilm-l6-v2", "input": ["How do I read a file?", "Open it with File::open."]}))]
pub struct EmbedBody {
    /// Model name.
    model: String,
    /// 1 to 2,048 texts.
    input: Vec<String>,
}

/// Vectors, one per input text, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmbedOut {
    /// Model name.
    pub model: String,
    /// Dimension.
    pub dim: usize,
    /// Vectors (L2-normalised when the model says so).
    pub data: Vec<Vec<f32>>,
}

/// Embed texts with an installed model.
#[utoipa::path(post, path = "/v1/embed", tag = "embeddings", operation_id = "embed", request_body = EmbedBody,
    responses((status = 200, body = EmbedOut), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn embed(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: EmbedBody = parse_json(body, state.body_limit)?;
    blocking(move || {
        let (dim, data) = ops::embed_for(&ctx, &body.model, &body.input)?;
        Ok(json_response(StatusCode::OK, &EmbedOut { model: body.model, dim, data }))
    })
    .await
}

/// Documents to chunk, embed and store.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"documents": [{"id": "fs-guide", "title": "Files",
    "text": "Open a file with File::open.\n\nRead it whole with read_to_string.", "payload": {"lang": "en"}}]}))]
pub struct DocumentsBody {
    /// The documents.
    #[schema(value_type = Vec<schema::Document>)]
    documents: Vec<Document>,
}

/// What was written.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DocumentsOut {
    /// Documents written.
    pub documents: usize,
    /// Chunks (points) written.
    pub chunks: usize,
    /// Sequence number of the durable batch.
    pub seq: u64,
}

/// Chunk documents by tokens (with overlap, at paragraph and sentence breaks),
/// embed the chunks and store them as points `{id}#{n}`; replaces earlier chunks.
#[utoipa::path(post, path = "/v1/collections/{name}/documents", tag = "documents", operation_id = "upsert_documents", params(("name" = String, Path)),
    request_body = DocumentsBody,
    responses((status = 200, body = DocumentsOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn upsert_documents(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: DocumentsBody = parse_json(body, state.body_limit)?;
    blocking(move || {
        let w = ops::upsert_documents(&ctx, &name, body.documents)?;
        Ok(json_response(StatusCode::OK, &DocumentsOut { documents: w.documents, chunks: w.chunks, seq: w.seq }))
    })
    .await
}

/// Document ids.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ids": ["fs-guide"]}))]
pub struct DocumentIds {
    /// Ids (unknown ones are ignored).
    ids: Vec<String>,
}

/// Delete documents (all their chunks).
#[utoipa::path(post, path = "/v1/collections/{name}/documents/delete", tag = "documents", operation_id = "delete_documents",
    params(("name" = String, Path)), request_body = DocumentIds,
    responses((status = 200, body = super::points::DeletedCount), (status = 400, body = ErrorBody)))]
pub async fn delete_documents(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: DocumentIds = parse_json(body, state.body_limit)?;
    blocking(move || {
        let deleted = ctx.collection(&name)?.delete_documents(&body.ids)?;
        Ok(json_response(StatusCode::OK, &super::points::DeletedCount { deleted }))
    })
    .await
}
