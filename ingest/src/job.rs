//! The persisted job record and its API view.
//!
//! # On disk (format version 1)
//!
//! `{jobs_dir}/{id}.json` holds one [`JobRecord`] as JSON, replaced atomically
//! (written to `{id}.json.tmp`, fsynced, renamed, directory fsynced) at every
//! checkpoint, so a crash leaves either the old or the new record. The record
//! carries the job body (an inline Postgres URL included: the data directory is
//! as private as the data), status, progress counters and the checkpoint they
//! describe. `{jobs_dir}/sync/{name}.json` holds the incremental state of S3
//! sources ([`crate::s3::SyncState`]). `{jobs_dir}/tmp/` holds downloads in
//! progress and is emptied at open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use crate::spec::JobSpec;
use crate::{Error, Result};

/// Version of [`JobRecord`] files.
pub const FORMAT_VERSION: u32 = 1;

/// Per-item errors kept in a job (the newest replace the oldest beyond this).
pub const MAX_ITEM_ERRORS: usize = 100;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Where a job is.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = JobStatus)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for a slot (`jobs.max_concurrent`).
    Queued,
    /// Reading and writing (or, for sync jobs, following the source).
    Running,
    /// Done.
    Succeeded,
    /// Stopped by an error (see `error`).
    Failed,
    /// Stopped by `DELETE /v1/jobs/{id}`.
    Cancelled,
}

impl Status {
    /// Whether the job will not run again.
    pub fn terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// Counters of a job, saved with the checkpoint they describe.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = JobProgress)]
pub struct Progress {
    /// Items (rows, objects) read.
    pub read: u64,
    /// Points written (a document counts its chunks).
    pub written: u64,
    /// Items set aside as errors.
    pub failed: u64,
    /// Points deleted (changes captured, objects removed).
    pub deleted: u64,
    /// Items unchanged since the last run (S3 objects with the same ETag).
    pub skipped: u64,
    /// Source bytes read.
    pub bytes: u64,
    /// Source bytes in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// Items in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_items: Option<u64>,
    /// Points written per second in this run.
    #[serde(default)]
    pub rate: f64,
    /// Seconds left, when the total is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<f64>,
}

/// A bad item and why.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = JobItemError)]
pub struct ItemError {
    /// Where it was: `line 12`, `record 3`, `row 7`, `id 42`, or an object key.
    pub item: String,
    /// What was wrong.
    pub message: String,
}

/// How far a sync job is behind its source.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = JobLag)]
pub struct Lag {
    /// Seconds since the collection last caught up with the source.
    pub seconds: f64,
    /// CDC: WAL bytes the replication slot has not confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// A position in a file.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct FilePos {
    /// Rows (records, lines with content) consumed.
    pub rows: u64,
    /// Byte offset after them (JSONL, CSV).
    pub byte: u64,
    /// Line number after them (JSONL, CSV).
    pub line: u64,
}

/// Where a Postgres job is.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "phase", rename_all = "lowercase")]
pub enum PgPhase {
    /// Keyset pagination: the last id loaded (text form).
    Snapshot {
        /// Last id written.
        after: Option<String>,
    },
    /// Cursor polling: the last (cursor, id) loaded.
    Incremental {
        /// Last cursor value.
        cursor: Option<String>,
        /// Last id at that cursor value.
        id: Option<String>,
    },
    /// Logical replication: changes confirmed up to this LSN.
    Stream {
        /// The slot's confirmed LSN.
        lsn: String,
    },
}

/// The durable position of a job: everything before it is written.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Checkpoint {
    /// Nothing written yet.
    #[default]
    Start,
    /// A file source.
    File {
        /// Position.
        pos: FilePos,
    },
    /// An S3 object in progress (objects before it are in the sync state).
    S3 {
        /// Key.
        key: String,
        /// Its ETag when it was started.
        etag: String,
        /// Position inside it.
        pos: FilePos,
    },
    /// A Postgres source.
    Postgres {
        /// Phase and position.
        #[serde(flatten)]
        phase: PgPhase,
        /// Whether this job created its replication slot (dropped on cancel).
        #[serde(default)]
        slot_created: bool,
    },
}

/// A job as stored.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct JobRecord {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Who created it, as the server recorded it (key id, role, scope).
    pub owner: Value,
    /// The body.
    pub spec: JobSpec,
    /// Status.
    pub status: Status,
    /// Created, ms since the epoch.
    pub created_ms: u64,
    /// First started.
    pub started_ms: Option<u64>,
    /// Finished.
    pub finished_ms: Option<u64>,
    /// Counters.
    pub progress: Progress,
    /// A sample of item errors.
    pub errors: Vec<ItemError>,
    /// Why it failed.
    pub error: Option<String>,
    /// Transient failures retried.
    pub retries: u64,
    /// The last transient failure.
    pub last_retry_error: Option<String>,
    /// Where to resume.
    pub checkpoint: Checkpoint,
    /// Sync jobs: how far behind.
    pub lag: Option<Lag>,
}

/// A job as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// Id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Target collection.
    pub collection: String,
    /// `postgres`, `file` or `s3`.
    pub source: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: Status,
    /// Created, ms since the epoch.
    pub created_ms: u64,
    /// First started.
    pub started_ms: Option<u64>,
    /// Finished.
    pub finished_ms: Option<u64>,
    /// Counters, rate and ETA.
    pub progress: Progress,
    /// A sample of item errors (at most 100, newest kept).
    pub errors: Vec<ItemError>,
    /// Why it failed.
    pub error: Option<String>,
    /// Transient failures retried so far.
    pub retries: u64,
    /// The last transient failure.
    pub last_retry_error: Option<String>,
    /// Sync jobs (incremental, CDC): how far behind the source.
    pub lag: Option<Lag>,
    /// The body, with an inline connection string hidden.
    #[schema(value_type = crate::spec::JobSpec)]
    pub spec: Value,
}

impl JobRecord {
    /// The API view.
    pub fn view(&self) -> JobView {
        let source = match &self.spec.source {
            crate::spec::SourceSpec::File { .. } => "file",
            crate::spec::SourceSpec::S3 { .. } => "s3",
            crate::spec::SourceSpec::Postgres { .. } => "postgres",
        };
        JobView {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            collection: self.spec.collection.clone(),
            source: source.into(),
            status: self.status,
            created_ms: self.created_ms,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            progress: self.progress.clone(),
            errors: self.errors.clone(),
            error: self.error.clone(),
            retries: self.retries,
            last_retry_error: self.last_retry_error.clone(),
            lag: self.lag.clone(),
            spec: self.spec.redacted(),
        }
    }

    /// Keep an item error (bounded; the newest win).
    pub fn push_error(&mut self, item: String, message: String) {
        if self.errors.len() >= MAX_ITEM_ERRORS {
            self.errors.remove(0);
        }
        self.errors.push(ItemError { item, message });
    }
}

/// Write `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = fs_err::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs_err::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs_err::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The job files of a data directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Open (creating) `dir`, empty its `tmp/`.
    pub fn open(dir: &Path) -> Result<Self> {
        fs_err::create_dir_all(dir.join("sync"))?;
        let tmp = dir.join("tmp");
        if tmp.exists() {
            fs_err::remove_dir_all(&tmp)?;
        }
        fs_err::create_dir_all(&tmp)?;
        Ok(Self { dir: dir.to_owned() })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every record; a file that does not parse is an error naming it.
    pub fn load_all(&self) -> Result<Vec<JobRecord>> {
        let mut out = Vec::new();
        for entry in fs_err::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                if path.to_string_lossy().ends_with(".json.tmp") {
                    fs_err::remove_file(&path)?;
                }
                continue;
            }
            let text = fs_err::read(&path)?;
            let rec: JobRecord = serde_json::from_slice(&text)
                .map_err(|e| Error::Failed(format!("job file {} is damaged: {e}", path.display())))?;
            if rec.format_version != FORMAT_VERSION {
                return Err(Error::Failed(format!(
                    "job file {} has format version {} (this build reads {FORMAT_VERSION})",
                    path.display(),
                    rec.format_version
                )));
            }
            out.push(rec);
        }
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    /// Save a record durably.
    pub fn save(&self, rec: &JobRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(rec).map_err(|e| Error::Failed(e.to_string()))?;
        write_atomic(&self.dir.join(format!("{}.json", rec.id)), &bytes)
    }

    /// Remove a record.
    pub fn remove(&self, id: &str) -> Result<()> {
        match fs_err::remove_file(self.dir.join(format!("{id}.json"))) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => Ok(r?),
        }
    }
}

/// Why a job should stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Go,
    Cancel,
    Shutdown,
}

/// One job: its record and its stop signal.
#[derive(Debug)]
pub struct Job {
    /// Id.
    pub id: String,
    pub(crate) rec: Mutex<JobRecord>,
    pub(crate) stop: watch::Sender<Stop>,
    pub(crate) store: Arc<Store>,
    /// (time, written) at the start of this run, for the rate.
    pub(crate) run_start: Mutex<(u64, u64)>,
    pub(crate) done: tokio::sync::Notify,
}

impl Job {
    /// A copy of the record.
    pub fn record(&self) -> JobRecord {
        self.rec.lock().clone()
    }

    /// Change the record.
    pub fn update<T>(&self, f: impl FnOnce(&mut JobRecord) -> T) -> T {
        f(&mut self.rec.lock())
    }

    /// Save the record durably.
    pub fn save(&self) -> Result<()> {
        let rec = self.record();
        self.store.save(&rec)
    }

    /// Whether cancel or shutdown was asked for.
    pub fn stop_requested(&self) -> bool {
        *self.stop.borrow() != Stop::Go
    }

    pub(crate) fn cancelled(&self) -> bool {
        *self.stop.borrow() == Stop::Cancel
    }

    /// Resolves once a stop is asked for.
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s != Stop::Go).await;
    }

    /// Recompute rate and ETA.
    pub fn refresh_rate(&self) {
        let (t0, w0) = *self.run_start.lock();
        self.update(|r| {
            let secs = (now_ms().saturating_sub(t0)) as f64 / 1000.0;
            let p = &mut r.progress;
            if secs > 0.0 {
                p.rate = (p.written.saturating_sub(w0)) as f64 / secs;
            }
            p.eta_secs = eta(p, secs);
        });
    }
}

fn eta(p: &Progress, secs: f64) -> Option<f64> {
    if secs <= 0.0 {
        return None;
    }
    let left = |done: u64, total: u64| total.saturating_sub(done) as f64;
    match (p.total_bytes, p.total_items) {
        (Some(t), _) if p.bytes > 0 => Some(left(p.bytes, t) / (p.bytes as f64 / secs)),
        (_, Some(t)) if p.read > 0 => Some(left(p.read, t) / (p.read as f64 / secs)),
        _ => None,
    }
}

pub(crate) fn new_job(rec: JobRecord, store: Arc<Store>) -> Job {
    let (stop, _) = watch::channel(Stop::Go);
    Job {
        id: rec.id.clone(),
        run_start: Mutex::new((now_ms(), rec.progress.written)),
        rec: Mutex::new(rec),
        stop,
        store,
        done: tokio::sync::Notify::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record written by format version 1 still loads, checkpoint and all.
    #[test]
    fn a_version_1_record_loads() {
        let dir = tempfile::tempdir().unwrap();
        let fixture = include_str!("../tests/fixtures/job-v1.json");
        fs_err::write(dir.path().join("job_1a2352f6c6b0000.json"), fixture).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let recs = store.load_all().unwrap();
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!((r.status, r.progress.written, r.retries), (Status::Running, 1190, 2));
        assert_eq!(
            r.checkpoint,
            Checkpoint::Postgres { phase: PgPhase::Stream { lsn: "0/1542FD8".into() }, slot_created: true }
        );
        assert!(!r.view().spec.to_string().contains("secret"));
        // Saving and loading again gives the same record.
        store.save(r).unwrap();
        let again = store.load_all().unwrap();
        assert_eq!(again[0].checkpoint, r.checkpoint);
        // A newer version is refused, naming it.
        let newer = fixture.replace("\"format_version\": 1", "\"format_version\": 2");
        fs_err::write(dir.path().join("job_1a2352f6c6b0000.json"), newer).unwrap();
        assert!(store.load_all().unwrap_err().to_string().contains("format version 2"));
    }
}
