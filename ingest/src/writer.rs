//! Batches into the sink: rows are mapped and checked, bad items set aside
//! (counted, sampled, within the job's error budget), the rest written in one
//! durable upsert, then the counters and the checkpoint move together.

use std::sync::Arc;
use std::time::{Duration, Instant};

use naksha_query::{Collection, Document, Filter, PointId};
use serde_json::{Map, Value};

use crate::job::{Checkpoint, Job, Lag};
use crate::row::{Item, Labeled};
use crate::spec::Mapping;
use crate::{Error, Result, Sink};

/// How often a checkpoint is saved while a job runs (replayed batches are idempotent).
const SAVE_EVERY: Duration = Duration::from_millis(500);

/// Writes one job's batches.
pub struct Writer {
    pub(crate) job: Arc<Job>,
    pub(crate) sink: Arc<dyn Sink>,
    mapping: Arc<Mapping>,
    last_save: Instant,
    /// Whether anything was written since the last transient failure.
    pub(crate) progressed: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("job", &self.job.id).finish_non_exhaustive()
    }
}

/// What a batch did.
#[derive(Debug, Default)]
struct Outcome {
    written: u64,
    errors: Vec<(String, String)>,
}

impl Writer {
    pub(crate) fn new(job: Arc<Job>, sink: Arc<dyn Sink>) -> Self {
        let mapping = Arc::new(job.record().spec.mapping.clone());
        Self { job, sink, mapping, last_save: Instant::now(), progressed: false }
    }

    /// The job's checkpoint now.
    pub fn checkpoint(&self) -> Checkpoint {
        self.job.record().checkpoint
    }

    /// Batch size of the job.
    pub fn batch_size(&self) -> usize {
        self.job.record().spec.batch_size
    }

    /// Error unless the job should go on.
    pub fn check_stop(&self) -> Result<()> {
        if self.job.stop_requested() {
            return Err(Error::Stopped);
        }
        Ok(())
    }

    /// Sleep, returning early with [`Error::Stopped`] on cancel or shutdown.
    pub async fn sleep(&self, d: Duration) -> Result<()> {
        tokio::select! {
            () = tokio::time::sleep(d) => self.check_stop(),
            () = self.job.stopped() => Err(Error::Stopped),
        }
    }

    /// The collection, opened on the blocking pool.
    pub async fn collection(&self) -> Result<Arc<Collection>> {
        let sink = self.sink.clone();
        blocking(move || sink.collection()).await
    }

    /// Map, check and write `rows` (with `extra` merged into every payload),
    /// then record `read` items and `bytes` and move to `cp`.
    pub async fn write(
        &mut self,
        rows: Vec<Labeled>,
        extra: Option<Arc<Map<String, Value>>>,
        bytes: u64,
        cp: Checkpoint,
    ) -> Result<()> {
        self.check_stop()?;
        let read = rows.len() as u64;
        let (sink, mapping) = (self.sink.clone(), self.mapping.clone());
        let out = blocking(move || write_rows(&*sink, &mapping, rows, extra.as_deref())).await?;
        self.written(read, bytes, out, cp)
    }

    /// Write documents (S3 document objects), each labelled; then move to `cp`.
    pub async fn write_documents(
        &mut self,
        docs: Vec<(String, std::result::Result<Document, String>)>,
        bytes: u64,
        cp: Checkpoint,
    ) -> Result<()> {
        self.check_stop()?;
        let read = docs.len() as u64;
        let sink = self.sink.clone();
        let out = blocking(move || {
            let c = sink.collection()?;
            let items = docs.into_iter().map(|(label, d)| (label, d.map(Item::Document))).collect();
            write_checked(&*sink, &c, items)
        })
        .await?;
        self.written(read, bytes, out, cp)
    }

    /// Count a written batch and move to `cp`.
    fn written(&mut self, read: u64, bytes: u64, out: Outcome, cp: Checkpoint) -> Result<()> {
        let written = out.written;
        self.record(
            |p| {
                p.read += read;
                p.written += written;
                p.bytes += bytes;
            },
            out.errors,
            cp,
        )
    }

    /// Delete points by id, then move to `cp`.
    pub async fn delete(&mut self, ids: Vec<PointId>, cp: Checkpoint) -> Result<()> {
        self.delete_with(move |c| c.delete(ids), cp).await
    }

    /// Delete every point matching `filter` (an object's stale rows), then move to `cp`.
    pub async fn delete_where(&mut self, filter: Filter, cp: Checkpoint) -> Result<()> {
        self.delete_with(move |c| c.delete_where(&filter), cp).await
    }

    /// Delete every point (a captured TRUNCATE).
    pub async fn delete_all(&mut self, cp: Checkpoint) -> Result<()> {
        self.delete_with(|c| c.delete_all(), cp).await
    }

    /// Run a delete on the collection off the async workers, count it, move to `cp`.
    async fn delete_with(
        &mut self,
        f: impl FnOnce(&Collection) -> naksha_query::Result<usize> + Send + 'static,
        cp: Checkpoint,
    ) -> Result<()> {
        self.check_stop()?;
        let sink = self.sink.clone();
        let n = blocking(move || Ok(f(&*sink.collection()?)?)).await?;
        self.record(|p| p.deleted += n as u64, Vec::new(), cp)
    }

    /// Count items skipped as unchanged.
    pub fn skipped(&mut self, n: u64, cp: Checkpoint) -> Result<()> {
        self.record(|p| p.skipped += n, Vec::new(), cp)
    }

    /// Set totals for the ETA.
    pub fn totals(&self, bytes: Option<u64>, items: Option<u64>) {
        self.job.update(|r| {
            r.progress.total_bytes = bytes;
            r.progress.total_items = items;
        });
    }

    /// Report how far behind the source the collection is.
    pub fn lag(&self, lag: Lag) {
        self.job.update(|r| r.lag = Some(lag));
    }

    fn record(
        &mut self,
        f: impl FnOnce(&mut crate::job::Progress),
        errors: Vec<(String, String)>,
        cp: Checkpoint,
    ) -> Result<()> {
        let (failed, budget) = self.job.update(|r| {
            f(&mut r.progress);
            r.progress.failed += errors.len() as u64;
            for (item, message) in errors {
                r.push_error(item, message);
            }
            r.checkpoint = cp;
            (r.progress.failed, r.spec.max_failed)
        });
        self.progressed = true;
        self.job.refresh_rate();
        self.save(false)?;
        if failed > budget {
            return Err(Error::Failed(format!(
                "{failed} items failed, more than the error budget (max_failed = {budget}); see errors"
            )));
        }
        Ok(())
    }

    /// Save the record now (`force`) or when the last save is old enough.
    pub fn save(&mut self, force: bool) -> Result<()> {
        if force || self.last_save.elapsed() >= SAVE_EVERY {
            self.job.save()?;
            self.last_save = Instant::now();
        }
        Ok(())
    }
}

/// Run blocking work (engine writes, file reads) off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Failed(format!("worker failed: {e}")))?
}

/// Check an item against the collection without writing.
fn check(c: &Collection, item: &Item) -> std::result::Result<(), String> {
    match item {
        Item::Point(p) => c.check(p).map_err(|e| e.to_string()),
        Item::Document(d) => {
            if d.id.len() > 1024 {
                return Err(format!("document id of {} bytes is too long", d.id.len()));
            }
            c.embedder().map(|_| ()).map_err(|e| e.to_string())
        }
    }
}

fn write_rows(
    sink: &dyn Sink,
    mapping: &Mapping,
    rows: Vec<Labeled>,
    extra: Option<&Map<String, Value>>,
) -> Result<Outcome> {
    let c = sink.collection()?;
    let items = rows.into_iter().map(|l| (l.label, l.row.and_then(|r| mapping.apply(r, extra)))).collect();
    write_checked(sink, &c, items)
}

/// Check each item, set the bad ones aside, write the rest.
fn write_checked(
    sink: &dyn Sink,
    c: &Collection,
    items: Vec<(String, std::result::Result<Item, String>)>,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    let mut good = Vec::with_capacity(items.len());
    for (label, item) in items {
        match item.and_then(|i| check(c, &i).map(|()| i)) {
            Ok(i) => good.push((label, i)),
            Err(e) => out.errors.push((label, e)),
        }
    }
    // The last occurrence of an id in a batch wins, as it would in order.
    let mut seen = std::collections::HashSet::new();
    let mut unique: Vec<(String, Item)> = good.into_iter().rev().filter(|(_, i)| seen.insert(i.id())).collect();
    unique.reverse();
    match write_items(sink, unique.iter().map(|(_, i)| i.clone()).collect()) {
        Ok(n) => out.written += n,
        // A bad item the checks missed: write one by one to find it.
        Err(Error::Invalid(_)) => {
            for (label, item) in unique {
                match write_items(sink, vec![item]) {
                    Ok(n) => out.written += n,
                    Err(Error::Invalid(e)) => out.errors.push((label, e)),
                    Err(e) => return Err(e),
                }
            }
        }
        Err(e) => return Err(e),
    }
    Ok(out)
}

fn write_items(sink: &dyn Sink, items: Vec<Item>) -> Result<u64> {
    let (mut points, mut docs) = (Vec::new(), Vec::new());
    for i in items {
        match i {
            Item::Point(p) => points.push(p),
            Item::Document(d) => docs.push(d),
        }
    }
    let mut n = points.len() as u64;
    if !points.is_empty() {
        sink.upsert_points(points)?;
    }
    if !docs.is_empty() {
        n += sink.upsert_documents(docs)? as u64;
    }
    Ok(n)
}
