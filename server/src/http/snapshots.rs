//! Snapshots, downloads, restores and S3 backups of the caller's tenant
//! ([`naksha_query::snapshot`], [`crate::backup`]):
//!
//! | route                                                  | what                                  |
//! |--------------------------------------------------------|---------------------------------------|
//! | `POST /v1/collections/{name}/snapshots`                 | snapshot one collection (`{"upload": "s3"}`: and upload it) |
//! | `GET /v1/collections/{name}/snapshots`                  | its snapshots                         |
//! | `GET /v1/collections/{name}/snapshots/{id}`             | download the archive (streamed)       |
//! | `DELETE /v1/collections/{name}/snapshots/{id}`          | delete it                             |
//! | `POST /v1/collections/{name}/snapshots/{id}/restore`    | restore it into `{"target"}`          |
//! | `POST /v1/snapshots`                                    | snapshot every collection             |
//! | `GET /v1/snapshots`                                     | every snapshot kept here              |
//! | `POST /v1/snapshots/restore`                            | restore an uploaded archive (`application/octet-stream`, `?target=`), or `{"s3": {"key"}, "target"}`, or `{"path", "target"}` |
//! | `GET /v1/snapshots/s3`                                  | the tenant's backups in the bucket    |
//!
//! Every incoming archive (upload, S3 object) is spooled to a file in the
//! tenant's data directory first; its manifest is read for the quota check,
//! then the restore verifies every file before the collection appears.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use naksha_query::SnapshotInfo;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::collections::Deleted;
use super::{blocking, body_bytes, json_response, AppState};
use crate::backup::{Backups, RemoteSnapshot};
use crate::error::{ApiError, ErrorBody, Kind};
use crate::tenancy::Ctx;

/// The media type of snapshot archives.
pub const ARCHIVE_TYPE: &str = "application/x-tar";
/// The response header that carries an archive's SHA-256 (lowercase hex).
pub const SHA256_HEADER: &str = "x-naksha-sha256";

/// A snapshot.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SnapshotView {
    /// Id, unique per collection (sortable by time).
    pub id: String,
    /// Collection it was taken of.
    pub collection: String,
    /// Sequence number of the cut: every write up to it is in, none after.
    pub seq: u64,
    /// Live points at the cut.
    pub points: u64,
    /// Archive size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the archive (lowercase hex).
    pub sha256: String,
    /// When the cut was taken (RFC 3339).
    pub created_at: String,
    /// Where it was uploaded, with `"upload": "s3"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_key: Option<String>,
}

impl SnapshotView {
    fn new(i: SnapshotInfo, s3_key: Option<String>) -> Self {
        Self {
            id: i.id,
            collection: i.collection,
            seq: i.seq,
            points: i.points,
            size_bytes: i.size_bytes,
            sha256: i.sha256,
            created_at: i.created_at,
            s3_key,
        }
    }
}

/// Snapshots, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SnapshotList {
    /// Snapshots.
    pub snapshots: Vec<SnapshotView>,
}

/// Backups in the bucket.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RemoteList {
    /// Backups of the tenant, by key.
    pub snapshots: Vec<RemoteSnapshot>,
}

/// Where else a new snapshot goes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Upload {
    /// The `[backup]` bucket.
    S3,
}

/// Options of a new snapshot (the body may be empty).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    /// Also upload it (to the `[backup]` bucket).
    #[serde(default)]
    pub upload: Option<Upload>,
}

/// Restore a snapshot into a new collection.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreInto {
    /// Name of the new collection (409 if it exists).
    pub target: String,
}

/// An object in S3 to restore from.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Object {
    /// Object key, as `GET /v1/snapshots/s3` lists it.
    pub key: String,
    /// Bucket (admins only; default: the `[backup]` bucket).
    #[serde(default)]
    pub bucket: Option<String>,
}

/// Restore from S3 or from a local path (a JSON body; an uploaded archive is
/// sent as `application/octet-stream` with `?target=`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreFrom {
    /// Name of the new collection (409 if it exists).
    pub target: String,
    /// An object in the backup bucket.
    #[serde(default)]
    pub s3: Option<S3Object>,
    /// An archive under one of the operator's `backup.restore_dirs` (relative path).
    #[serde(default)]
    pub path: Option<String>,
    /// The archive's expected SHA-256 (checked before anything is visible).
    #[serde(default)]
    pub sha256: Option<String>,
}

/// A snapshot archive (tar), uploaded as it was downloaded.
#[derive(Debug, utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Archive(pub Vec<u8>);

/// Query of an uploaded archive's restore.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// Name of the new collection.
    pub target: Option<String>,
    /// The archive's expected SHA-256.
    pub sha256: Option<String>,
}

/// A restored collection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RestoreView {
    /// The new collection.
    pub collection: String,
    /// The collection the snapshot was taken of.
    pub source_collection: String,
    /// Sequence number of the snapshot's cut.
    pub seq: u64,
    /// Live points restored.
    pub points: u64,
    /// Archive bytes read.
    pub size_bytes: u64,
    /// SHA-256 of the archive read.
    pub sha256: String,
    /// When the snapshot was taken.
    pub created_at: String,
}

fn backups(state: &AppState) -> Result<&Arc<Backups>, ApiError> {
    state
        .backups
        .as_ref()
        .ok_or_else(|| ApiError::invalid("S3 backups are off: the operator has set no backup.s3_bucket"))
}

fn optional_body<T: Default + serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = body_bytes(body, limit)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    crate::ops::decode_json(&bytes)
}

async fn create_one(state: &AppState, ctx: &Ctx, name: &str, upload: Option<Upload>) -> Result<SnapshotView, ApiError> {
    let db = ctx.db()?;
    match upload {
        None => Ok(SnapshotView::new(crate::snapshots::create_local(state, db, name.to_owned()).await?, None)),
        Some(Upload::S3) => {
            let b = backups(state)?;
            let (info, key) = crate::snapshots::upload_new_snapshot(state, b, &db, &ctx.tenant, name, false).await?;
            Ok(SnapshotView::new(info, Some(key)))
        }
    }
}

/// Snapshot a collection online: a point-in-time cut (writes go on), packed
/// into one archive with a manifest of every file's size and SHA-256.
#[utoipa::path(post, path = "/v1/collections/{name}/snapshots", tag = "snapshots", operation_id = "create_snapshot",
    params(("name" = String, Path)), request_body(content = CreateSnapshot, description = "optional"),
    responses((status = 201, body = SnapshotView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let opts: CreateSnapshot = optional_body(body, state.body_limit)?;
    ctx.collection(&name)?;
    let view = create_one(&state, &ctx, &name, opts.upload).await?;
    Ok(json_response(StatusCode::CREATED, &view))
}

/// Snapshot every collection of the tenant (each at its own cut).
#[utoipa::path(post, path = "/v1/snapshots", tag = "snapshots", operation_id = "create_snapshots",
    request_body(content = CreateSnapshot, description = "optional"),
    responses((status = 201, body = SnapshotList), (status = 400, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn create_all(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let opts: CreateSnapshot = optional_body(body, state.body_limit)?;
    if opts.upload.is_some() {
        backups(&state)?;
    }
    let mut snapshots = Vec::new();
    for (name, _) in ctx.db()?.list().into_iter().filter(|(n, _)| ctx.visible(n)) {
        snapshots.push(create_one(&state, &ctx, &name, opts.upload).await?);
    }
    Ok(json_response(StatusCode::CREATED, &SnapshotList { snapshots }))
}

/// The collection's snapshots kept on this node (also after the collection
/// was deleted; 404 when there is neither the collection nor a snapshot of it).
#[utoipa::path(get, path = "/v1/collections/{name}/snapshots", tag = "snapshots", operation_id = "list_snapshots",
    params(("name" = String, Path)), responses((status = 200, body = SnapshotList), (status = 400, body = ErrorBody)))]
pub async fn list(Extension(ctx): Extension<Arc<Ctx>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let db = ctx.db()?;
    let found = blocking(move || {
        let found = db.snapshots(Some(&name))?;
        // Neither a collection nor a snapshot of one by that name: 404, as for any unknown collection.
        if found.is_empty() {
            db.collection(&name)?;
        }
        Ok(found)
    })
    .await?;
    let snapshots = found.into_iter().map(|i| SnapshotView::new(i, None)).collect();
    Ok(json_response(StatusCode::OK, &SnapshotList { snapshots }))
}

/// Every snapshot of the tenant kept on this node.
#[utoipa::path(get, path = "/v1/snapshots", tag = "snapshots", operation_id = "list_all_snapshots",
    responses((status = 200, body = SnapshotList)))]
pub async fn list_all(Extension(ctx): Extension<Arc<Ctx>>) -> Result<Response, ApiError> {
    let db = ctx.db()?;
    let found = blocking(move || Ok(db.snapshots(None)?)).await?;
    let snapshots =
        found.into_iter().filter(|i| ctx.visible(&i.collection)).map(|i| SnapshotView::new(i, None)).collect();
    Ok(json_response(StatusCode::OK, &SnapshotList { snapshots }))
}

/// Download a snapshot's archive (streamed, `application/x-tar`), with
/// `Content-Length` and its SHA-256 in `X-Naksha-Sha256`.
#[utoipa::path(get, path = "/v1/collections/{name}/snapshots/{id}", tag = "snapshots", operation_id = "download_snapshot",
    params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "the archive", content_type = "application/x-tar"), (status = 404, body = ErrorBody)))]
pub async fn download(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let db = ctx.db()?;
    let (path, info) = blocking(move || Ok(db.snapshot_archive(&name, &id)?)).await?;
    let file = tokio::fs::File::open(&path).await.map_err(ApiError::internal)?;
    state.metrics.snapshot_op("download", true, info.size_bytes, 0.0);
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
    let disposition = format!("attachment; filename=\"{}-{}.tar\"", info.collection, info.id);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ARCHIVE_TYPE.to_owned()),
            (header::CONTENT_LENGTH, info.size_bytes.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::HeaderName::from_static(SHA256_HEADER), info.sha256),
        ],
        body,
    )
        .into_response())
}

/// Delete a snapshot kept on this node.
#[utoipa::path(delete, path = "/v1/collections/{name}/snapshots/{id}", tag = "snapshots", operation_id = "delete_snapshot",
    params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody)))]
pub async fn delete(
    Extension(ctx): Extension<Arc<Ctx>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let db = ctx.db()?;
    let (n, i) = (name.clone(), id.clone());
    match blocking(move || Ok(db.delete_snapshot(&n, &i)?)).await? {
        true => Ok(json_response(StatusCode::OK, &Deleted { deleted: true })),
        false => Err(ApiError::not_found(format!("snapshot {id:?} of collection {name:?} not found"))),
    }
}

/// Restore `archive` (a file) into `target` within the tenant's quotas, then
/// remove the file when `spooled`.
async fn restore_file(
    state: &AppState,
    ctx: Arc<Ctx>,
    archive: PathBuf,
    spooled: bool,
    target: String,
    sha256: Option<String>,
) -> Result<Response, ApiError> {
    if !ctx.visible(&target) {
        return Err(ApiError::denied(format!("this key may not use collection {target:?}")));
    }
    let started = Instant::now();
    let file = archive.clone();
    let done = blocking(move || {
        let db = ctx.db()?;
        let size = fs_err::metadata(&file).map_err(ApiError::internal)?.len();
        let open = || fs_err::File::open(&file).map(|f| std::io::BufReader::with_capacity(1 << 20, f));
        let manifest = naksha_query::snapshot::read_manifest(open().map_err(ApiError::internal)?)?;
        let _admitted = ctx.admit_restore(manifest.points, size)?;
        let (_, r) = db.restore(open().map_err(ApiError::internal)?, &target, sha256.as_deref())?;
        Ok((target, r))
    })
    .await;
    if spooled {
        let _ = tokio::fs::remove_file(&archive).await;
    }
    let bytes = done.as_ref().map_or(0, |(_, r)| r.archive_bytes);
    state.metrics.snapshot_op("restore", done.is_ok(), bytes, started.elapsed().as_secs_f64());
    let (collection, r) = done?;
    let m = r.manifest;
    let view = RestoreView {
        collection,
        source_collection: m.collection,
        seq: m.seq,
        points: m.points,
        size_bytes: r.archive_bytes,
        sha256: r.sha256,
        created_at: m.created_at,
    };
    Ok(json_response(StatusCode::CREATED, &view))
}

/// A fresh spool file for an incoming archive in the tenant's data directory.
async fn spool_path(ctx: &Ctx) -> Result<PathBuf, ApiError> {
    let db = ctx.db()?;
    let dir = blocking(move || Ok(db.incoming_dir()?)).await?;
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    Ok(dir.join(format!("in-{n}-{}", std::process::id())))
}

/// Restore a snapshot kept on this node into a new collection.
#[utoipa::path(post, path = "/v1/collections/{name}/snapshots/{id}/restore", tag = "snapshots", operation_id = "restore_snapshot",
    params(("name" = String, Path), ("id" = String, Path)), request_body = RestoreInto,
    responses((status = 201, body = RestoreView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn restore(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path((name, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: RestoreInto = super::parse_json(body, state.body_limit)?;
    let db = ctx.db()?;
    let (path, info) = blocking(move || Ok(db.snapshot_archive(&name, &id)?)).await?;
    restore_file(&state, ctx, path, false, req.target, Some(info.sha256)).await
}

/// Restore from an uploaded archive (`application/octet-stream` body,
/// `?target=`), from the backup bucket (`{"s3": {"key"}, "target"}`), or from
/// a path under `backup.restore_dirs` (`{"path", "target"}`).
#[utoipa::path(post, path = "/v1/snapshots/restore", tag = "snapshots", operation_id = "restore_archive",
    params(UploadParams),
    request_body(content((RestoreFrom = "application/json"), (Archive = "application/octet-stream"))),
    responses((status = 201, body = RestoreView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn restore_archive(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Query(params): Query<UploadParams>,
    req: Request,
) -> Result<Response, ApiError> {
    let is_upload = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("application/octet-stream"));
    if is_upload {
        let target = params.target.ok_or_else(|| ApiError::invalid("an uploaded archive needs ?target=NAME"))?;
        naksha_query::database::validate_name(&target)?;
        let spool = spool_path(&ctx).await?;
        if let Err(e) = receive(req.into_body(), &spool).await {
            let _ = tokio::fs::remove_file(&spool).await;
            return Err(e);
        }
        return restore_file(&state, ctx, spool, true, target, params.sha256).await;
    }
    if params.target.is_some() || params.sha256.is_some() {
        return Err(ApiError::invalid(
            "?target= and ?sha256= go with an uploaded archive; a JSON body names them itself",
        ));
    }
    let bytes =
        axum::body::to_bytes(req.into_body(), state.body_limit).await.map_err(|e| ApiError::invalid(e.to_string()))?;
    let body: RestoreFrom = crate::ops::decode_json(&bytes)?;
    naksha_query::database::validate_name(&body.target)?;
    match (body.s3, body.path) {
        (Some(s3), None) => {
            let b = backups(&state)?;
            if s3.bucket.is_some() && ctx.principal.role != crate::tenancy::Role::Admin {
                return Err(ApiError::denied("only admin keys name a bucket; others restore from the backup bucket"));
            }
            if s3.bucket.is_none() && !b.owns(&ctx.tenant, &s3.key) {
                return Err(ApiError::not_found(format!(
                    "no backup {:?} of tenant {:?} in the bucket",
                    s3.key, ctx.tenant
                )));
            }
            let spool = spool_path(&ctx).await?;
            let started = Instant::now();
            let got = b.download(s3.bucket.as_deref(), &s3.key, &spool).await;
            state.metrics.snapshot_op("s3_download", got.is_ok(), 0, started.elapsed().as_secs_f64());
            let recorded = match got {
                Ok(sha) => sha,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&spool).await;
                    return Err(e);
                }
            };
            if let (Some(given), Some(rec)) = (&body.sha256, &recorded) {
                if !given.eq_ignore_ascii_case(rec) {
                    let _ = tokio::fs::remove_file(&spool).await;
                    return Err(ApiError::invalid(format!("the object's recorded SHA-256 is {rec}, not {given}")));
                }
            }
            restore_file(&state, ctx, spool, true, body.target, body.sha256.or(recorded)).await
        }
        (None, Some(path)) => {
            let full = naksha_ingest::runner::resolve_under(
                &state.restore_dirs,
                &path,
                "backup.restore_dirs",
                "restores from local paths",
            )
            .map_err(crate::jobs::to_api)?;
            restore_file(&state, ctx, full, false, body.target, body.sha256).await
        }
        _ => Err(ApiError::invalid(
            "name exactly one source: s3 or path (or upload the archive as application/octet-stream)",
        )),
    }
}

/// Write a request body to `dest`, chunk by chunk.
async fn receive(body: Body, dest: &std::path::Path) -> Result<(), ApiError> {
    use futures_util::StreamExt;
    let mut file = tokio::fs::File::create(dest).await.map_err(ApiError::internal)?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| match super::body_timed_out(&e) {
            true => ApiError::new(Kind::RequestTimeout, "the upload stalled past server.body_read_timeout_secs"),
            false => ApiError::invalid(format!("cannot read the uploaded archive: {e}")),
        })?;
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    Ok(())
}

/// The tenant's backups in the `[backup]` bucket.
#[utoipa::path(get, path = "/v1/snapshots/s3", tag = "snapshots", operation_id = "list_s3_snapshots",
    responses((status = 200, body = RemoteList), (status = 400, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn list_s3(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
) -> Result<Response, ApiError> {
    let found = backups(&state)?.list(&ctx.tenant).await?;
    let snapshots = found.into_iter().filter(|r| ctx.visible(&r.collection)).collect();
    Ok(json_response(StatusCode::OK, &RemoteList { snapshots }))
}
