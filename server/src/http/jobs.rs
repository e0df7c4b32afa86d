//! `POST /v1/jobs`, `GET /v1/jobs[/{id}]`, `DELETE /v1/jobs/{id}`: ingestion
//! jobs of the caller's tenant ([`crate::jobs`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use naksha_ingest::{JobSpec, JobView};
use serde::Serialize;

use super::{body_bytes, json_response, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{owner, to_api};
use crate::tenancy::Ctx;

/// Jobs of the tenant, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobList {
    /// Jobs.
    pub jobs: Vec<JobView>,
}

/// Start a job: 202 with its id and status `queued`. The body is checked and
/// the source's fields probed before anything is written; a bad mapping is a
/// 400 naming the field.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", operation_id = "create_job", request_body = JobSpec,
    responses((status = 202, body = JobView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(body, state.body_limit)?;
    let spec = JobSpec::from_json(&bytes).map_err(to_api)?;
    if !ctx.visible(&spec.collection) {
        return Err(ApiError::denied(format!("this key may not use collection {:?}", spec.collection)));
    }
    let view = state.jobs()?.create(&ctx.tenant, owner(&ctx.principal), spec).await.map_err(to_api)?;
    Ok(json_response(StatusCode::ACCEPTED, &view))
}

/// The tenant's jobs.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", operation_id = "list_jobs",
    responses((status = 200, body = JobList), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
) -> Result<Response, ApiError> {
    let jobs = state.jobs()?.list(Some(&ctx.tenant)).into_iter().filter(|j| ctx.visible(&j.collection)).collect();
    Ok(json_response(StatusCode::OK, &JobList { jobs }))
}

/// One job: status, progress (read, written, failed, rate, ETA), a sample of item errors, lag.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "get_job", params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &visible_job(&state, &ctx, &id)?))
}

/// Cancel a queued or running job (a CDC job's own replication slot is dropped); 409 once finished.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "cancel_job", params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible_job(&state, &ctx, &id)?;
    let view = state.jobs()?.cancel(Some(&ctx.tenant), &id).await.map_err(to_api)?;
    Ok(json_response(StatusCode::OK, &view))
}

/// A job of the caller's tenant whose collection its key may use; 404 otherwise
/// (a job out of the key's scope looks exactly like a missing one).
fn visible_job(state: &AppState, ctx: &Ctx, id: &str) -> Result<JobView, ApiError> {
    let view = state.jobs()?.get(Some(&ctx.tenant), id).map_err(to_api)?;
    if !ctx.visible(&view.collection) {
        return Err(ApiError::not_found(format!("job {id:?} not found")));
    }
    Ok(view)
}
