//! Backups of snapshots ([`naksha_query::snapshot`]) to an S3-compatible
//! bucket: streamed multipart uploads with bounded memory, listing, downloads
//! for restores, and scheduled backups with retention.
//!
//! | file      | what                                                        |
//! |-----------|-------------------------------------------------------------|
//! | `mod.rs`  | [`Backups`]: the bucket, keys per tenant, upload, list, download, delete, retention; the schedule loop |
//! | `cron.rs` | cron schedules and the keep-daily/keep-weekly rule          |
//!
//! Keys: `{s3_prefix}{tenant}/{collection}/{id}.tar` for snapshots uploaded on
//! demand, `{s3_prefix}{tenant}/{collection}/scheduled/{id}.tar` for scheduled
//! ones (only those are pruned by retention). Every object carries its
//! archive's SHA-256, sequence number and point count as user metadata; a
//! restore checks the SHA-256 before anything is visible. A tenant lists and
//! restores only keys under its own prefix.

pub mod cron;

use std::path::Path;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use naksha_query::SnapshotInfo;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ApiError, Kind};
use crate::settings::BackupSettings;

/// S3's smallest part of a multipart upload (all but the last), in MiB.
pub const MIN_PART_MIB: usize = 5;

/// An object in the backup bucket.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RemoteSnapshot {
    /// Object key (what a restore names).
    pub key: String,
    /// Collection the snapshot was taken of.
    pub collection: String,
    /// Snapshot id.
    pub id: String,
    /// Archive size.
    pub size_bytes: u64,
    /// When the object was written (RFC 3339).
    pub last_modified: Option<String>,
    /// Uploaded by the schedule (and pruned by its retention).
    pub scheduled: bool,
}

/// The backup bucket.
#[derive(Debug)]
pub struct Backups {
    client: aws_sdk_s3::Client,
    /// Bucket name.
    pub bucket: String,
    prefix: String,
    /// The schedule, when one is configured.
    pub schedule: Option<cron::Schedule>,
    keep_daily: usize,
    keep_weekly: usize,
    /// Bytes per part of a multipart upload: the memory one upload holds.
    part_bytes: usize,
}

/// An S3 failure as the API reports it: 503 for what a retry may fix, 404
/// for a missing key, 502 otherwise, with the store's own code and message.
fn s3_error<E, R>(what: &str, e: SdkError<E, R>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or_default().to_owned();
    let text = match e.message() {
        Some(m) => format!("s3 {what}: {code}: {m}"),
        None => format!("s3 {what}: {}", DisplayErrorContext(&e)),
    };
    match (&e, code.as_str()) {
        (_, "NoSuchKey" | "NotFound") => ApiError::not_found(text),
        (SdkError::TimeoutError(_) | SdkError::DispatchFailure(_), _)
        | (_, "SlowDown" | "Throttling" | "RequestTimeout" | "ServiceUnavailable" | "InternalError") => {
            ApiError::unavailable(text)
        }
        _ => ApiError::new(Kind::BadGateway, text),
    }
}

fn io_error(what: &str, e: std::io::Error) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
}

/// Read a secret from a file (trailing newline dropped).
fn secret_file(path: &str, what: &str) -> Result<String, String> {
    fs_err::read_to_string(path).map(|s| s.trim_end().to_owned()).map_err(|e| format!("{what}: {e}"))
}

impl Backups {
    /// Connect to the configured bucket; `None` when `backup.s3_bucket` is empty.
    /// Credentials: `s3_access_key_id_file` and `s3_secret_access_key_file`
    /// when set, else the SDK's chain (environment, shared files, roles).
    pub async fn connect(s: &BackupSettings) -> Result<Option<Self>, String> {
        if s.s3_bucket.is_empty() {
            if !s.schedule.is_empty() {
                return Err("backup.schedule is set but backup.s3_bucket is empty".into());
            }
            return Ok(None);
        }
        if s.s3_part_mib < MIN_PART_MIB {
            return Err(format!(
                "backup.s3_part_mib is {}; S3 needs parts of at least {MIN_PART_MIB} MiB",
                s.s3_part_mib
            ));
        }
        let schedule = match s.schedule.as_str() {
            "" => None,
            text => Some(cron::Schedule::parse(text)?),
        };
        let endpoint = (!s.s3_endpoint.is_empty()).then_some(s.s3_endpoint.as_str());
        let region = (!s.s3_region.is_empty()).then_some(s.s3_region.as_str());
        let mut client = naksha_ingest::s3::client(endpoint, region, None).await;
        match (s.s3_access_key_id_file.as_str(), s.s3_secret_access_key_file.as_str()) {
            ("", "") => {}
            ("", _) | (_, "") => {
                return Err("backup: set both s3_access_key_id_file and s3_secret_access_key_file, or neither".into())
            }
            (id, secret) => {
                let creds = aws_sdk_s3::config::Credentials::new(
                    secret_file(id, "backup.s3_access_key_id_file")?,
                    secret_file(secret, "backup.s3_secret_access_key_file")?,
                    None,
                    None,
                    "naksha-backup-files",
                );
                let conf = client.config().to_builder().credentials_provider(creds).build();
                client = aws_sdk_s3::Client::from_conf(conf);
            }
        }
        let mut prefix = s.s3_prefix.clone();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Some(Self {
            client,
            bucket: s.s3_bucket.clone(),
            prefix,
            schedule,
            keep_daily: s.keep_daily,
            keep_weekly: s.keep_weekly,
            part_bytes: s.s3_part_mib << 20,
        }))
    }

    fn tenant_prefix(&self, tenant: &str) -> String {
        format!("{}{tenant}/", self.prefix)
    }

    /// The key of a snapshot of `tenant`.
    pub fn key(&self, tenant: &str, info: &SnapshotInfo, scheduled: bool) -> String {
        let sub = if scheduled { "scheduled/" } else { "" };
        format!("{}{}/{sub}{}.tar", self.tenant_prefix(tenant), info.collection, info.id)
    }

    /// Whether `key` belongs to `tenant` (a tenant may name no other key).
    pub fn owns(&self, tenant: &str, key: &str) -> bool {
        self.parse_key(tenant, key).is_some()
    }

    /// (collection, id, scheduled) of one of `tenant`'s keys.
    fn parse_key(&self, tenant: &str, key: &str) -> Option<(String, String, bool)> {
        let rest = key.strip_prefix(&self.tenant_prefix(tenant))?.strip_suffix(".tar")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let (collection, id, scheduled) = match parts[..] {
            [c, id] => (c, id, false),
            [c, "scheduled", id] => (c, id, true),
            _ => return None,
        };
        let valid = |n: &str| naksha_query::database::validate_name(n).is_ok();
        (valid(collection) && valid(id)).then(|| (collection.to_owned(), id.to_owned(), scheduled))
    }

    /// Upload an archive: one PUT when it fits in a part, else a multipart
    /// upload reading one part at a time (aborted on failure, so no partial
    /// object ever appears). Returns the bytes sent.
    pub async fn upload(&self, archive: &Path, key: &str, info: &SnapshotInfo) -> Result<u64, ApiError> {
        let what = format!("upload s3://{}/{key}", self.bucket);
        let size = tokio::fs::metadata(archive).await.map_err(|e| io_error(&what, e))?.len();
        let meta = [
            ("sha256", info.sha256.clone()),
            ("seq", info.seq.to_string()),
            ("points", info.points.to_string()),
            ("collection", info.collection.clone()),
            ("created-at", info.created_at.clone()),
        ];
        if size <= self.part_bytes as u64 {
            let body = ByteStream::from_path(archive).await.map_err(|e| ApiError::internal(format!("{what}: {e}")))?;
            let mut put = self.client.put_object().bucket(&self.bucket).key(key).body(body).content_length(size as i64);
            for (k, v) in meta {
                put = put.metadata(k, v);
            }
            put.content_type("application/x-tar").send().await.map_err(|e| s3_error(&what, e))?;
            return Ok(size);
        }
        let mut create = self.client.create_multipart_upload().bucket(&self.bucket).key(key);
        for (k, v) in meta {
            create = create.metadata(k, v);
        }
        let created = create.content_type("application/x-tar").send().await.map_err(|e| s3_error(&what, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let sent = self.upload_parts(archive, key, &upload_id, &what).await;
        match sent {
            Ok(parts) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                    .send()
                    .await
                    .map_err(|e| s3_error(&what, e))?;
                Ok(size)
            }
            Err(e) => {
                let aborted = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                if let Err(abort) = aborted {
                    tracing::warn!(key, error = %DisplayErrorContext(&abort), "cannot abort a failed multipart upload");
                }
                Err(e)
            }
        }
    }

    async fn upload_parts(
        &self,
        archive: &Path,
        key: &str,
        upload_id: &str,
        what: &str,
    ) -> Result<Vec<CompletedPart>, ApiError> {
        let mut file = tokio::fs::File::open(archive).await.map_err(|e| io_error(what, e))?;
        let mut parts = Vec::new();
        let mut buf = vec![0u8; self.part_bytes];
        for number in 1.. {
            let mut filled = 0;
            while filled < buf.len() {
                let n = file.read(&mut buf[filled..]).await.map_err(|e| io_error(what, e))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            let body = ByteStream::from(buf[..filled].to_vec());
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(body)
                .send()
                .await
                .map_err(|e| s3_error(what, e))?;
            parts.push(CompletedPart::builder().part_number(number).set_e_tag(part.e_tag().map(str::to_owned)).build());
            if filled < buf.len() {
                break;
            }
        }
        Ok(parts)
    }

    /// The tenant's backups, in key order.
    pub async fn list(&self, tenant: &str) -> Result<Vec<RemoteSnapshot>, ApiError> {
        let prefix = self.tenant_prefix(tenant);
        let what = format!("list s3://{}/{prefix}", self.bucket);
        let mut out = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error(&what, e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let Some((collection, id, scheduled)) = self.parse_key(tenant, key) else { continue };
                out.push(RemoteSnapshot {
                    key: key.to_owned(),
                    collection,
                    id,
                    size_bytes: o.size().unwrap_or(0).max(0) as u64,
                    last_modified: o.last_modified().map(|t| crate::tenancy::clock::format(t.secs())),
                    scheduled,
                });
            }
        }
        Ok(out)
    }

    /// Download `key` (from `bucket`, else the backup bucket) into `dest`,
    /// streamed; returns the object's recorded SHA-256, if any.
    pub async fn download(&self, bucket: Option<&str>, key: &str, dest: &Path) -> Result<Option<String>, ApiError> {
        let bucket = bucket.unwrap_or(&self.bucket);
        let what = format!("download s3://{bucket}/{key}");
        let got = self.client.get_object().bucket(bucket).key(key).send().await.map_err(|e| s3_error(&what, e))?;
        let sha = got.metadata().and_then(|m| m.get("sha256")).cloned();
        let mut body = got.body.into_async_read();
        let mut file = tokio::fs::File::create(dest).await.map_err(|e| io_error(&what, e))?;
        tokio::io::copy(&mut body, &mut file).await.map_err(|e| ApiError::unavailable(format!("{what}: {e}")))?;
        file.flush().await.map_err(|e| io_error(&what, e))?;
        Ok(sha)
    }

    /// Delete one object.
    pub async fn delete(&self, key: &str) -> Result<(), ApiError> {
        let what = format!("delete s3://{}/{key}", self.bucket);
        self.client.delete_object().bucket(&self.bucket).key(key).send().await.map_err(|e| s3_error(&what, e))?;
        Ok(())
    }

    /// Prune the tenant's scheduled backups of each collection to
    /// `keep_daily` / `keep_weekly` ([`cron::retained`]); returns the keys deleted.
    pub async fn apply_retention(&self, tenant: &str) -> Result<Vec<String>, ApiError> {
        let mut by_collection: std::collections::BTreeMap<String, Vec<(i64, String)>> = Default::default();
        for r in self.list(tenant).await?.into_iter().filter(|r| r.scheduled) {
            if let Some(t) = id_time(&r.id) {
                by_collection.entry(r.collection).or_default().push((t, r.key));
            }
        }
        let mut deleted = Vec::new();
        for backups in by_collection.values() {
            let keep = cron::retained(backups, self.keep_daily, self.keep_weekly);
            for (_, key) in backups.iter().filter(|(_, k)| !keep.contains(k)) {
                self.delete(key).await?;
                deleted.push(key.clone());
            }
        }
        Ok(deleted)
    }
}

/// The creation time encoded in a snapshot id (`YYYYMMDDTHHMMSSZ-...`).
pub fn id_time(id: &str) -> Option<i64> {
    let b = id.get(..16)?;
    let rfc = format!("{}-{}-{}T{}:{}:{}Z", &b[0..4], &b[4..6], &b[6..8], &b[9..11], &b[11..13], &b[13..15]);
    crate::tenancy::clock::parse(&rfc).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_time() {
        assert_eq!(
            id_time("20261203T101530Z-42").map(crate::tenancy::clock::format).as_deref(),
            Some("2026-12-03T10:15:30Z")
        );
        assert_eq!(id_time("nonsense"), None);
    }
}
