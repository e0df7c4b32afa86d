//! Naksha's ingestion jobs: items flow from a source (files, S3, Postgres with
//! change data capture) through a [`spec::Mapping`] into a collection, as
//! persisted jobs that resume from their last durable checkpoint.
//!
//! | module      | what                                                             |
//! |-------------|------------------------------------------------------------------|
//! | `spec`      | the job body, checked before anything runs                        |
//! | `row`       | rows as read, and the mapping to points and documents             |
//! | `job`       | the persisted record: status, progress, checkpoint (format v1)    |
//! | `runner`    | [`Jobs`]: create, list, cancel, the concurrency limit, retries    |
//! | `writer`    | one batch at a time into the [`Sink`], item errors set aside      |
//! | `file`      | JSONL, CSV, Parquet and Arrow IPC readers (streaming)             |
//! | `s3`        | objects of a bucket prefix, incremental by ETag                   |
//! | `postgres`  | keyset snapshot, cursor polling, logical replication (`pgoutput`) |
//!
//! Writes are idempotent upserts by id, so replaying the batches after the
//! last checkpoint (after a crash) neither loses nor duplicates points, and
//! progress counters are saved with the checkpoint they describe.
//!
//! The crate knows nothing of tenants or HTTP: the server hands it a
//! [`Sinks`] that opens a tenant's collection with its quotas.
#![forbid(unsafe_code)]

pub mod file;
pub mod job;
pub mod pgoutput;
pub mod postgres;
pub mod row;
pub mod runner;
pub mod s3;
pub mod spec;
#[cfg(feature = "testing")]
pub mod testing;
pub mod writer;

use std::sync::Arc;

use naksha_query::{Collection, Document, Point};

pub use job::{JobView, Status};
pub use runner::{Jobs, Options};
pub use spec::JobSpec;

/// Errors of ingestion.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad job body or mapping (400).
    #[error("{0}")]
    Invalid(String),
    /// A path outside the import directories (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such job (404).
    #[error("{0}")]
    NotFound(String),
    /// The job is in a state that does not allow this (409).
    #[error("{0}")]
    Conflict(String),
    /// A failure worth retrying: lost connection, 5xx, throttling.
    #[error("{0}")]
    Transient(String),
    /// A failure retrying will not fix: wrong credentials, missing bucket or table.
    #[error("{0}")]
    Failed(String),
    /// The job was cancelled or the server is stopping.
    #[error("stopped")]
    Stopped,
}

impl Error {
    /// Whether retrying may help.
    pub fn transient(&self) -> bool {
        matches!(self, Error::Transient(_))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Failed(e.to_string())
    }
}

impl From<naksha_query::Error> for Error {
    fn from(e: naksha_query::Error) -> Self {
        use naksha_query::ErrorKind as K;
        match e.kind() {
            K::InvalidArgument | K::Unprocessable => Error::Invalid(e.to_string()),
            _ => Error::Failed(e.to_string()),
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Where a job writes: one collection, with the owner's quotas.
pub trait Sink: Send + Sync {
    /// The collection (for checks and deletes).
    fn collection(&self) -> Result<Arc<Collection>>;
    /// Upsert points (embedding those without a vector); `Invalid` when a point is bad.
    fn upsert_points(&self, points: Vec<Point>) -> Result<()>;
    /// Chunk, embed and upsert documents; returns the chunks written.
    fn upsert_documents(&self, docs: Vec<Document>) -> Result<usize>;
}

/// Opens the [`Sink`] of a job.
pub trait Sinks: Send + Sync + 'static {
    /// The sink for `collection` of `tenant`, acting as `owner` (what the server recorded at creation).
    fn open(&self, tenant: &str, owner: &serde_json::Value, collection: &str) -> Result<Arc<dyn Sink>>;
}
