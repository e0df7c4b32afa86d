//! State shared by the HTTP and gRPC front ends, and the bridge from async
//! handlers to blocking engine calls.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::tenancy::Tenancy;

/// Shared by every handler.
#[derive(Debug)]
pub struct AppState {
    /// Set once recovery has finished: tenants, keys, their databases, the audit log.
    pub tenancy: OnceLock<Arc<Tenancy>>,
    /// True once the database is open and every front end (gRPC health too) says so.
    pub ready: AtomicBool,
    /// Request metrics.
    pub metrics: Metrics,
    /// Body limit in bytes.
    pub body_limit: usize,
    /// Hosts an `openai` RAG generator may call.
    pub generator_hosts: Vec<String>,
    /// Host, origin, media type and size checks (`http::guard`).
    pub policy: Policy,
    /// Ingestion jobs, set with the tenancy once recovery has finished.
    pub jobs: OnceLock<naksha_ingest::Jobs>,
    /// The S3 backup bucket, when `backup.s3_bucket` is set.
    pub backups: Option<Arc<crate::backup::Backups>>,
    /// Folders restores by local path may read (`backup.restore_dirs`).
    pub restore_dirs: Vec<std::path::PathBuf>,
}

impl AppState {
    /// Tenancy (and through it every database), or 503 while recovery runs.
    pub fn tenancy(&self) -> Result<Arc<Tenancy>, ApiError> {
        self.tenancy.get().cloned().ok_or_else(|| ApiError::unavailable("recovering; retry shortly"))
    }

    /// The job table, or 503 while recovery runs.
    pub fn jobs(&self) -> Result<&naksha_ingest::Jobs, ApiError> {
        self.jobs.get().ok_or_else(|| ApiError::unavailable("recovering; retry shortly"))
    }
}

/// Run blocking engine work off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

/// Names a loopback server answers to when no `allowed_hosts` are set.
const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// The request policy, from the settings and the bound address.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Accepted Host names (lower case, no port); `None`: any.
    pub allowed_hosts: Option<Vec<String>>,
    /// Origins allowed to call from a browser.
    pub cors_origins: Vec<String>,
    /// Longest wait between two pieces of a request body.
    pub body_timeout: Option<Duration>,
}

impl Policy {
    /// The policy for a server bound to `addr` with these settings.
    pub fn new(addr: std::net::SocketAddr, s: &crate::settings::ServerSettings) -> Self {
        let allowed_hosts = if !s.allowed_hosts.is_empty() {
            Some(s.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect())
        } else if addr.ip().is_loopback() {
            Some(LOOPBACK_NAMES.iter().map(|h| (*h).to_owned()).collect())
        } else {
            None
        };
        Self {
            allowed_hosts,
            cors_origins: s.cors_origins.clone(),
            body_timeout: Some(Duration::from_secs(s.body_read_timeout_secs)),
        }
    }
}
