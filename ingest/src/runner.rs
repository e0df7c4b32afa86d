//! [`Jobs`]: the job table of a node. Jobs run as tokio tasks, at most
//! `max_concurrent` at once (the rest wait `queued`); transient failures are
//! retried with exponential backoff from the last checkpoint; a restart
//! resumes every job that was queued or running.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::job::{new_job, now_ms, Checkpoint, Job, JobRecord, JobView, Progress, Status, Stop, Store, FORMAT_VERSION};
use crate::spec::{JobSpec, SourceSpec};
use crate::writer::Writer;
use crate::{Error, Result, Sinks};

/// Settings of [`Jobs`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Where job records live (`{data_dir}/jobs`).
    pub dir: PathBuf,
    /// Folders file sources may read from (empty: file sources are refused).
    pub import_dirs: Vec<PathBuf>,
    /// Jobs running at once.
    pub max_concurrent: usize,
    /// Finished jobs kept (the oldest are forgotten beyond this).
    pub keep_finished: usize,
    /// First retry delay; doubles per attempt up to 30 s.
    pub retry_backoff: Duration,
}

/// Per-tenant counters since the server started, for metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    /// Items read.
    pub read: u64,
    /// Points written.
    pub written: u64,
    /// Items failed.
    pub failed: u64,
    /// Transient failures retried.
    pub retries: u64,
}

#[derive(Debug)]
struct Inner {
    opts: Options,
    store: Arc<Store>,
    sinks: Arc<dyn Sinks>,
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
    slots: Arc<Semaphore>,
    seq: AtomicU64,
    totals: Mutex<HashMap<String, Totals>>,
}

impl std::fmt::Debug for dyn Sinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sinks")
    }
}

/// The jobs of a node.
#[derive(Clone, Debug)]
pub struct Jobs {
    inner: Arc<Inner>,
}

impl Jobs {
    /// Load the job records; [`Self::resume`] starts the unfinished ones.
    pub fn open(opts: Options, sinks: Arc<dyn Sinks>) -> Result<Self> {
        let store = Arc::new(Store::open(&opts.dir)?);
        let mut jobs = BTreeMap::new();
        for rec in store.load_all()? {
            let id = rec.id.clone();
            jobs.insert(id.clone(), Arc::new(new_job(rec, store.clone())));
        }
        let slots = Arc::new(Semaphore::new(opts.max_concurrent.max(1)));
        let inner = Inner {
            opts,
            store,
            sinks,
            jobs: Mutex::new(jobs),
            slots,
            seq: AtomicU64::new(0),
            totals: Mutex::default(),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Start every job left queued or running (call inside the runtime).
    pub fn resume(&self) {
        let pending: Vec<Arc<Job>> =
            self.inner.jobs.lock().values().filter(|j| !j.record().status.terminal()).cloned().collect();
        for job in pending {
            tracing::info!(job = %job.id, "resuming job from its last checkpoint");
            job.update(|r| r.status = Status::Queued);
            tokio::spawn(drive(self.inner.clone(), job));
        }
    }

    /// Create and start a job. The body is checked, the target collection
    /// opened, file paths resolved and the source's fields probed (within a
    /// few seconds; an unreachable source is left to the job, which fails or
    /// retries with a clear message).
    pub async fn create(&self, tenant: &str, owner: Value, spec: JobSpec) -> Result<JobView> {
        spec.validate()?;
        let sink = self.inner.sinks.open(tenant, &owner, &spec.collection)?;
        let collection = crate::writer::blocking(move || sink.collection()).await?;
        let m = &spec.mapping;
        let embeds = collection.embedder().is_ok();
        let documents = matches!(&spec.source, SourceSpec::S3 { format: crate::spec::Format::Documents, .. });
        if (m.vector.is_none() || m.chunk || documents) && !embeds {
            return Err(Error::Invalid(format!(
                "collection {:?} has no embedding model: give mapping.vector (a field with ready vectors)",
                spec.collection
            )));
        }
        let probe = tokio::time::timeout(Duration::from_secs(5), probe(&self.inner.opts, &spec));
        match probe.await {
            Ok(Ok(Some(columns))) => m.check_columns(&columns)?,
            Ok(Ok(None)) | Err(_) => {}
            Ok(Err(e @ (Error::Invalid(_) | Error::Forbidden(_)))) => return Err(e),
            Ok(Err(e)) => tracing::debug!(error = %e, "probe failed; the job will report it"),
        }
        let now = now_ms();
        let id = format!("job_{now:x}{:04x}", self.inner.seq.fetch_add(1, Ordering::Relaxed) & 0xffff);
        let rec = JobRecord {
            format_version: FORMAT_VERSION,
            id: id.clone(),
            tenant: tenant.to_owned(),
            owner,
            spec,
            status: Status::Queued,
            created_ms: now,
            started_ms: None,
            finished_ms: None,
            progress: Progress::default(),
            errors: Vec::new(),
            error: None,
            retries: 0,
            last_retry_error: None,
            checkpoint: Checkpoint::Start,
            lag: None,
        };
        self.inner.store.save(&rec)?;
        let job = Arc::new(new_job(rec, self.inner.store.clone()));
        let view = job.record().view();
        self.inner.jobs.lock().insert(id, job.clone());
        self.forget_old();
        tokio::spawn(drive(self.inner.clone(), job));
        Ok(view)
    }

    fn find(&self, tenant: Option<&str>, id: &str) -> Result<Arc<Job>> {
        let job = self.inner.jobs.lock().get(id).cloned();
        match job {
            Some(j) if tenant.is_none_or(|t| j.record().tenant == t) => Ok(j),
            // Another tenant's job looks exactly like a missing one.
            _ => Err(Error::NotFound(format!("job {id:?} not found"))),
        }
    }

    /// One job (`tenant`: only if it owns it; `None`: any).
    pub fn get(&self, tenant: Option<&str>, id: &str) -> Result<JobView> {
        Ok(self.find(tenant, id)?.record().view())
    }

    /// Jobs, oldest first (`tenant`: its own; `None`: all).
    pub fn list(&self, tenant: Option<&str>) -> Vec<JobView> {
        let jobs: Vec<Arc<Job>> = self.inner.jobs.lock().values().cloned().collect();
        let mut out: Vec<JobView> = jobs
            .iter()
            .map(|j| j.record())
            .filter(|r| tenant.is_none_or(|t| r.tenant == t))
            .map(|r| r.view())
            .collect();
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        out
    }

    /// Cancel a queued or running job and wait (up to 30 s) for it to stop.
    pub async fn cancel(&self, tenant: Option<&str>, id: &str) -> Result<JobView> {
        let job = self.find(tenant, id)?;
        let status = job.record().status;
        if status.terminal() {
            return Err(Error::Conflict(format!("job {id:?} already {}", status.as_str())));
        }
        let notified = job.done.notified();
        job.stop.send_replace(Stop::Cancel);
        let _ = tokio::time::timeout(Duration::from_secs(30), notified).await;
        Ok(job.record().view())
    }

    /// Cancel and forget every job of a tenant (the tenant is being deleted).
    pub async fn forget_tenant(&self, tenant: &str) -> Result<()> {
        let ids: Vec<String> = self.list(Some(tenant)).into_iter().map(|v| v.id).collect();
        for id in ids {
            let _ = self.cancel(Some(tenant), &id).await;
            self.inner.jobs.lock().remove(&id);
            self.inner.store.remove(&id)?;
        }
        crate::s3::SyncState::remove_tenant(&self.inner.store.dir().join("sync"), tenant)?;
        self.inner.totals.lock().remove(tenant);
        Ok(())
    }

    /// Stop every running job where it is (they resume at the next start).
    pub async fn shutdown(&self) {
        let jobs: Vec<Arc<Job>> = self.inner.jobs.lock().values().cloned().collect();
        let mut waits = Vec::new();
        for j in jobs.iter().filter(|j| !j.record().status.terminal()) {
            waits.push(j.done.notified());
            j.stop.send_replace(Stop::Shutdown);
        }
        for w in waits {
            let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
        }
    }

    /// Jobs by status and per-tenant counters, for metrics.
    pub fn stats(&self) -> (BTreeMap<&'static str, u64>, Vec<(String, Totals)>) {
        let mut by_status: BTreeMap<&'static str, u64> =
            [Status::Queued, Status::Running, Status::Succeeded, Status::Failed, Status::Cancelled]
                .iter()
                .map(|s| (s.as_str(), 0))
                .collect();
        for j in self.inner.jobs.lock().values() {
            *by_status.entry(j.record().status.as_str()).or_default() += 1;
        }
        let mut totals: Vec<(String, Totals)> = self.inner.totals.lock().iter().map(|(k, v)| (k.clone(), *v)).collect();
        totals.sort_by(|a, b| a.0.cmp(&b.0));
        (by_status, totals)
    }

    /// Forget the oldest finished jobs beyond `keep_finished`.
    fn forget_old(&self) {
        let mut finished: Vec<(u64, String)> = self
            .inner
            .jobs
            .lock()
            .values()
            .map(|j| j.record())
            .filter(|r| r.status.terminal())
            .map(|r| (r.finished_ms.unwrap_or(0), r.id))
            .collect();
        if finished.len() <= self.inner.opts.keep_finished {
            return;
        }
        finished.sort();
        let excess = finished.len() - self.inner.opts.keep_finished;
        for (_, id) in finished.into_iter().take(excess) {
            self.inner.jobs.lock().remove(&id);
            let _ = self.inner.store.remove(&id);
        }
    }
}

/// Resolve a file source's path under the import directories: relative, no
/// `..`, and (after symlinks) inside one of them.
pub fn resolve_import(dirs: &[PathBuf], path: &str) -> Result<PathBuf> {
    resolve_under(dirs, path, "jobs.import_dirs", "file sources")
}

/// Resolve `path` under the folders of the setting `setting` (the operator's
/// allow-list for `what`): relative, no `..`, and (after symlinks) inside one.
pub fn resolve_under(dirs: &[PathBuf], path: &str, setting: &str, what: &str) -> Result<PathBuf> {
    if dirs.is_empty() {
        return Err(Error::Forbidden(format!("{what} are off: the operator has set no {setting}")));
    }
    let rel = Path::new(path);
    let outside = || Error::Forbidden(format!("{path:?} is outside the folders of {setting}"));
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(outside());
    }
    for dir in dirs {
        let Ok(root) = fs_err::canonicalize(dir) else { continue };
        let Ok(full) = fs_err::canonicalize(root.join(rel)) else { continue };
        if !full.starts_with(&root) {
            return Err(outside());
        }
        return Ok(full);
    }
    Err(Error::Invalid(format!("{path:?} was not found in the folders of {setting}")))
}

/// The source's field names, when they can be learnt quickly (`None`: not known before reading).
async fn probe(opts: &Options, spec: &JobSpec) -> Result<Option<Vec<String>>> {
    match &spec.source {
        SourceSpec::File { path, format } => {
            let full = resolve_import(&opts.import_dirs, path)?;
            let format = crate::file::format_of(path, *format)?;
            crate::writer::blocking(move || crate::file::columns(&full, format)).await
        }
        SourceSpec::S3 { .. } => Ok(None),
        SourceSpec::Postgres { .. } => crate::postgres::probe(spec).await.map(Some),
    }
}

/// Run a job to its end (or until the server stops).
async fn drive(inner: Arc<Inner>, job: Arc<Job>) {
    let permit = tokio::select! {
        p = inner.slots.clone().acquire_owned() => p.ok(),
        () = job.stopped() => None,
    };
    if permit.is_some() && !job.stop_requested() {
        // Its own task, so that a panic fails the job instead of leaving it "running" forever.
        let task = tokio::spawn({
            let (inner, job) = (inner.clone(), job.clone());
            async move { run(&inner, &job).await }
        });
        if let Err(e) = task.await {
            tracing::error!(job = %job.id, error = %e, "job task panicked");
            finish(&job, Status::Failed, Some(format!("internal error: {e}")));
        }
    }
    match *job.stop.borrow() {
        Stop::Cancel => finish(&job, Status::Cancelled, None),
        Stop::Shutdown => {
            let _ = job.save();
        }
        Stop::Go => {}
    }
    drop(permit);
    job.done.notify_waiters();
}

fn finish(job: &Job, status: Status, error: Option<String>) {
    job.update(|r| {
        if !r.status.terminal() {
            r.status = status;
            r.error = error;
            r.finished_ms = Some(now_ms());
        }
    });
    job.refresh_rate();
    if let Err(e) = job.save() {
        tracing::error!(job = %job.id, error = %e, "cannot save the job's final state");
    }
}

async fn run(inner: &Arc<Inner>, job: &Arc<Job>) {
    job.update(|r| {
        r.status = Status::Running;
        r.started_ms.get_or_insert(now_ms());
    });
    *job.run_start.lock() = (now_ms(), job.record().progress.written);
    let _ = job.save();
    let (tenant, max_retries) = {
        let r = job.record();
        (r.tenant.clone(), r.spec.max_retries)
    };
    tracing::info!(job = %job.id, tenant, "job running");
    let mut attempt = 0u32;
    loop {
        let before = job.record().progress.clone();
        let result = run_once(inner, job, &mut attempt).await;
        let after = job.record().progress;
        {
            let mut totals = inner.totals.lock();
            let t = totals.entry(tenant.clone()).or_default();
            t.read += after.read.saturating_sub(before.read);
            t.written += after.written.saturating_sub(before.written);
            t.failed += after.failed.saturating_sub(before.failed);
        }
        match result {
            Ok(()) => {
                tracing::info!(job = %job.id, written = after.written, failed = after.failed, "job succeeded");
                return finish(job, Status::Succeeded, None);
            }
            Err(_) if job.stop_requested() => {
                if job.cancelled() {
                    cleanup(job).await;
                }
                return;
            }
            Err(e) if e.transient() && attempt < max_retries => {
                attempt += 1;
                let delay = inner.opts.retry_backoff.saturating_mul(1 << attempt.min(10)).min(Duration::from_secs(30));
                tracing::warn!(job = %job.id, attempt, error = %e, delay_ms = delay.as_millis() as u64, "transient failure; retrying from the last checkpoint");
                job.update(|r| {
                    r.retries += 1;
                    r.last_retry_error = Some(e.to_string());
                });
                inner.totals.lock().entry(tenant.clone()).or_default().retries += 1;
                let _ = job.save();
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = job.stopped() => {}
                }
                if job.stop_requested() {
                    if job.cancelled() {
                        cleanup(job).await;
                    }
                    return;
                }
            }
            Err(e) => {
                let message = match e.transient() {
                    true => format!("{e} (gave up after {max_retries} retries)"),
                    false => e.to_string(),
                };
                tracing::warn!(job = %job.id, error = %message, "job failed");
                return finish(job, Status::Failed, Some(message));
            }
        }
    }
}

/// One attempt from the last checkpoint.
async fn run_once(inner: &Arc<Inner>, job: &Arc<Job>, attempt: &mut u32) -> Result<()> {
    let rec = job.record();
    let sink = inner.sinks.open(&rec.tenant, &rec.owner, &rec.spec.collection)?;
    let mut w = Writer::new(job.clone(), sink);
    let result = match &rec.spec.source {
        SourceSpec::File { path, format } => {
            let full = resolve_import(&inner.opts.import_dirs, path)?;
            let format = crate::file::format_of(path, *format)?;
            crate::file::run(&mut w, full, format).await
        }
        SourceSpec::S3 { .. } => crate::s3::run(&mut w, &inner.store.dir().join("sync"), &rec).await,
        SourceSpec::Postgres { .. } => crate::postgres::run(&mut w, &rec).await,
    };
    if w.progressed {
        // Progress since the last failure: a continuous job's retry budget starts over.
        *attempt = 0;
    }
    w.save(true)?;
    result
}

/// After a cancel: release what the source holds (a replication slot).
async fn cleanup(job: &Arc<Job>) {
    let rec = job.record();
    if let Err(e) = crate::postgres::cleanup(&rec).await {
        tracing::warn!(job = %job.id, error = %e, "cannot drop the job's replication slot; drop it by hand");
    }
}
