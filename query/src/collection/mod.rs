//! A collection: the write path, the read path and recovery.
//!
//! | file             | responsibility                                               |
//! |------------------|--------------------------------------------------------------|
//! | `mod.rs`         | open/create/recover, upsert, delete, get, search             |
//! | `state.rs`       | id → location map, deletions, applying WAL operations        |
//! | `memtable.rs`    | the mutable segment (exact search)                           |
//! | `maintenance.rs` | flush, merge, manifest persistence, the background worker    |
//! | `search.rs`      | vector, text (BM25) and hybrid search                         |
//! | `text.rs`        | vectors from text fields, text queries, chunked documents    |
//!
//! ```text
//! upsert ─ validate batch ─ WAL append ─ fsync (group commit) ─ apply in seq order ─ ack
//!                                                                   │
//!            memtable ──(flush: freeze, build graph + text index, write, swap manifest)──► segment
//!            segments ──(merge: rewrite small/deleted-heavy ones)──────────► segment
//! search ─ vector side: plan per segment (graph walk | exact scan) ─ top-k per segment ─┐
//!        ─ text side: BM25 over the memtable's and every segment's text index ────────┴─ merge | fuse
//! ```
//!
//! Directory: `MANIFEST`, `wal/`, `seg-{id:08}/`. Recovery loads the manifest,
//! maps the listed segments (graphs are used in place, not rebuilt), removes
//! anything unlisted (an interrupted flush or merge), and replays the WAL past
//! `durable_seq`.

mod maintenance;
mod memtable;
mod search;
mod state;
mod text;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use naksha_index::bitset::Bitset;
use naksha_index::segment::{self, Segment, SegmentConfig};
use naksha_storage::manifest::{self, Manifest};
use naksha_storage::point::{JsonSize, Point, PointId, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH, MAX_TEXT_BYTES};
use naksha_storage::wal::{Wal, WalOp, WalOptions};
use parking_lot::{Condvar, Mutex, RwLock};
use serde::Serialize;
use serde_json::Value;

use crate::config::{CollectionConfig, EngineOptions};
use crate::filter::Filter;
use crate::{Error, Result};
use maintenance::Worker;
use memtable::Memtable;
pub use search::{ScoredPoint, SearchRequest, MAX_RESULTS};
use state::{Loc, SegmentSlot, State};
pub use text::{Document, DocumentsWritten, CHUNK_KEYS};

/// Counters describing what a collection has done (for metrics and tests).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Graphs built (by flushes and merges).
    pub graph_builds: AtomicU64,
    /// Segments opened from disk with their graph mapped in place.
    pub segments_loaded: AtomicU64,
    /// Per-segment searches that walked the graph.
    pub graph_searches: AtomicU64,
    /// Per-segment searches that scanned exactly.
    pub exact_searches: AtomicU64,
    /// Completed flushes.
    pub flushes: AtomicU64,
    /// Completed merges.
    pub merges: AtomicU64,
    /// Total time spent flushing, in microseconds.
    pub flush_micros: AtomicU64,
    /// Total time spent merging, in microseconds.
    pub merge_micros: AtomicU64,
    /// WAL records replayed at open.
    pub replayed: AtomicU64,
    /// Rounds of background work (flush, merge) that failed.
    pub background_failures: AtomicU64,
}

impl Metrics {
    /// Read a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}

/// Text fields must be an object of strings (or absent).
fn check_text(id: &PointId, text: &Value) -> Result<()> {
    match text {
        Value::Null => Ok(()),
        Value::Object(m) => match m.iter().find(|(_, v)| !v.is_string()) {
            Some((k, _)) => Err(Error::InvalidArgument(format!("point {id}: text field {k:?} must be a string"))),
            None => Ok(()),
        },
        _ => Err(Error::InvalidArgument(format!("point {id}: text must be an object of strings"))),
    }
}

/// The per-point rules: a valid id, a payload object of bounded size and depth,
/// text fields as an object of strings of bounded size.
fn check_point(p: &Point) -> Result<()> {
    let id = &p.id;
    id.validate().map_err(|e| Error::InvalidArgument(format!("point {id:.64}: {e}")))?;
    if !matches!(p.payload, Value::Object(_) | Value::Null) {
        return Err(Error::InvalidArgument(format!("point {id}: payload must be a JSON object")));
    }
    let size = JsonSize::of(&p.payload);
    if size.text_bytes > MAX_PAYLOAD_BYTES || size.depth > MAX_PAYLOAD_DEPTH {
        return Err(Error::InvalidArgument(format!(
            "point {id}: payload of about {} bytes, nested {} deep, exceeds the limits ({MAX_PAYLOAD_BYTES} bytes, {MAX_PAYLOAD_DEPTH} levels)",
            size.text_bytes, size.depth
        )));
    }
    check_text(id, &p.text)?;
    let text = JsonSize::of(&p.text).text_bytes;
    if text > MAX_TEXT_BYTES {
        return Err(Error::InvalidArgument(format!(
            "point {id}: text fields of about {text} bytes exceed the limit of {MAX_TEXT_BYTES}; upsert long texts as documents"
        )));
    }
    Ok(())
}

/// Which stored fields to read for a hit.
#[derive(Clone, Copy, Debug)]
struct Want {
    payload: bool,
    vector: bool,
    text: bool,
}

/// Stored fields read for a hit (`None` where not wanted).
#[derive(Debug, Default)]
struct Fields {
    vector: Option<Vec<f32>>,
    payload: Option<Value>,
    text: Option<Value>,
}

/// A stored point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// Id.
    pub id: PointId,
    /// Stored vector (normalised for cosine).
    pub vector: Vec<f32>,
    /// Payload.
    pub payload: Value,
    /// Text fields (`null` for none).
    pub text: Value,
}

/// Sizes and counts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CollectionInfo {
    /// Live points.
    pub points: usize,
    /// Immutable segments.
    pub segments: usize,
    /// Points in the mutable segment (live and replaced).
    pub memtable_points: usize,
    /// Bytes on disk (segments and WAL).
    pub disk_bytes: u64,
    /// Bytes needed in memory for fast search.
    pub memory_bytes: u64,
    /// WAL files and bytes.
    pub wal_files: usize,
    /// WAL bytes.
    pub wal_bytes: u64,
    /// Last applied sequence number.
    pub seq: u64,
    /// `ok`; `degraded` while background flushes or merges fail (writes still
    /// succeed until the memtable is full); `read_only` after a failed WAL
    /// `fsync` (restart to recover).
    pub status: HealthStatus,
    /// What is failing, when the status is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A collection's health, as [`CollectionInfo::status`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything works.
    Ok,
    /// Background work is failing and being retried with back-off.
    Degraded,
    /// The WAL takes no more writes until the collection is reopened.
    ReadOnly,
}

impl HealthStatus {
    /// `ok`, `degraded` or `read_only`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::ReadOnly => "read_only",
        }
    }
}

pub(crate) struct Inner {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) config: CollectionConfig,
    pub(crate) seg_config: SegmentConfig,
    pub(crate) options: EngineOptions,
    pub(crate) wal: Wal,
    pub(crate) state: RwLock<State>,
    /// Next sequence number to apply; writers apply strictly in order.
    gate: Mutex<u64>,
    gate_cv: Condvar,
    /// One flush or merge at a time.
    pub(crate) maintenance: Mutex<()>,
    pub(crate) metrics: Metrics,
    pub(crate) wake: Mutex<Option<std::sync::mpsc::Sender<maintenance::Msg>>>,
    /// Failures of background work, for back-off, back-pressure and reporting.
    pub(crate) health: Mutex<maintenance::Health>,
    /// Set by [`Collection::shutdown`]: background work stops between steps.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
}

/// A collection handle. Cheap to share behind an `Arc`; dropping the last
/// handle stops its background worker (every acknowledged write is already durable).
pub struct Collection {
    inner: Arc<Inner>,
    worker: Mutex<Option<Worker>>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection").field("name", &self.inner.name).field("dir", &self.inner.dir).finish()
    }
}

impl Drop for Collection {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Collection {
    /// Create a new collection in `dir`, which must not exist.
    pub fn create(dir: &Path, name: &str, config: CollectionConfig, options: EngineOptions) -> Result<Self> {
        config.validate()?;
        if let Some(e) = &config.embed {
            let model = options.models.get(&e.model)?;
            if model.dim() != config.vectors.dim {
                return Err(Error::InvalidArgument(format!(
                    "vectors.dim is {} but model {:?} makes {}-d vectors",
                    config.vectors.dim,
                    e.model,
                    model.dim()
                )));
            }
        }
        let staging = dir.with_extension("creating");
        if staging.exists() {
            fs_err::remove_dir_all(&staging).map_err(naksha_storage::Error::from)?;
        }
        fs_err::create_dir_all(&staging).map_err(naksha_storage::Error::from)?;
        let cfg = serde_json::to_value(&config).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Manifest::new(cfg).store(&staging)?;
        fs_err::rename(&staging, dir).map_err(naksha_storage::Error::from)?;
        if let Some(parent) = dir.parent() {
            naksha_storage::dirs::sync_dir(parent)?;
        }
        Self::open(dir, name, options)
    }

    /// Open and recover the collection in `dir`.
    pub fn open(dir: &Path, name: &str, options: EngineOptions) -> Result<Self> {
        let manifest = Manifest::load(dir)?.ok_or_else(|| {
            Error::Storage(naksha_storage::Error::Corrupt {
                path: dir.join(manifest::FILE_NAME),
                reason: "missing".into(),
            })
        })?;
        let config: CollectionConfig = serde_json::from_value(manifest.config.clone()).map_err(|e| {
            Error::Storage(naksha_storage::Error::Corrupt {
                path: dir.join(manifest::FILE_NAME),
                reason: e.to_string(),
            })
        })?;
        let seg_config = config.segment_config();
        remove_unlisted(dir, &manifest)?;
        let metrics = Metrics::default();
        let mut ids = HashMap::new();
        let mut segments: Vec<SegmentSlot> = Vec::new();
        for entry in &manifest.segments {
            let sdir = dir.join(manifest::segment_dir_name(entry.id));
            let seg = Segment::open(&sdir, &seg_config)?;
            metrics.segments_loaded.fetch_add(1, Relaxed);
            let mut deleted = match &entry.deletes {
                Some(f) => segment::read_deletes(&sdir.join(f), seg.len())?,
                None => Bitset::new(seg.len()),
            };
            for off in 0..seg.len() as u32 {
                if deleted.contains(off as usize) {
                    continue;
                }
                if let Some(Loc::Segment(prev, prev_off)) = ids.insert(seg.id(off)?, Loc::Segment(entry.id, off)) {
                    // Never written by this engine; heal by keeping the newer copy.
                    tracing::warn!(segment = prev, offset = prev_off, "duplicate live id; keeping the newer copy");
                    if let Some(s) = segments.iter_mut().find(|s| s.id == prev) {
                        s.deleted.insert(prev_off as usize);
                        s.dirty = true;
                    }
                }
            }
            deleted.grow(seg.len());
            segments.push(SegmentSlot {
                id: entry.id,
                seg: Arc::new(seg),
                deleted,
                deletes_file: entry.deletes.clone(),
                dirty: false,
            });
        }
        let (wal, replay) = Wal::open(&dir.join("wal"), manifest.durable_seq, WalOptions::default())?;
        let mut state = State {
            active: Memtable::new(config.vectors.dim, seg_config.text.as_ref())?,
            frozen: None,
            segments,
            ids,
            applied_seq: manifest.durable_seq,
            manifest,
            manifest_stale: false,
        };
        metrics.replayed.store(replay.len() as u64, Relaxed);
        for (seq, op) in replay {
            state.apply(seq, op);
        }
        state.applied_seq = state.applied_seq.max(wal.last_seq());
        let next = state.applied_seq + 1;
        let inner = Arc::new(Inner {
            name: name.to_owned(),
            dir: dir.to_owned(),
            seg_config,
            config,
            wal,
            state: RwLock::new(state),
            gate: Mutex::new(next),
            gate_cv: Condvar::new(),
            maintenance: Mutex::new(()),
            metrics,
            wake: Mutex::new(None),
            health: Mutex::new(maintenance::Health::default()),
            stopping: Default::default(),
            options,
        });
        let worker = if inner.options.background { Some(Worker::start(inner.clone())?) } else { None };
        tracing::info!(collection = name, points = inner.state.read().ids.len(), "collection opened");
        Ok(Self { inner, worker: Mutex::new(worker) })
    }

    /// Stop the background worker (idempotent). Writes remain possible and durable.
    pub fn shutdown(&self) {
        self.inner.stopping.store(true, Relaxed);
        *self.inner.wake.lock() = None;
        if let Some(w) = self.worker.lock().take() {
            w.stop();
        }
    }

    /// Run `f` while no flush or merge runs (they hold the same lock).
    pub(crate) fn quiesced<T>(&self, f: impl FnOnce() -> T) -> T {
        let _maintenance = self.inner.maintenance.lock();
        f()
    }

    /// Take a point-in-time cut into `dest` (which must not exist): the
    /// manifest on disk, hard links to the segment files it lists (copies
    /// where the file system cannot link), and the WAL up to the last applied
    /// sequence number. Opening `dest` as a collection gives exactly the
    /// state at that sequence number. Writes go on meanwhile; only flushes
    /// and merges wait (they hold the same lock). Returns the sequence number
    /// and the live point count at the cut.
    pub fn cut(&self, dest: &Path) -> Result<(u64, usize)> {
        let _maintenance = self.inner.maintenance.lock();
        // Applied records were made durable before they were applied.
        let (seq, points) = {
            let st = self.inner.state.read();
            (st.applied_seq, st.ids.len())
        };
        let dir = &self.inner.dir;
        let manifest = Manifest::load(dir)?.ok_or_else(|| internal("collection without a manifest"))?;
        fs_err::create_dir_all(dest).map_err(naksha_storage::Error::from)?;
        fs_err::copy(dir.join(manifest::FILE_NAME), dest.join(manifest::FILE_NAME))
            .map_err(naksha_storage::Error::from)?;
        for s in &manifest.segments {
            let name = manifest::segment_dir_name(s.id);
            let keep = |file: &str| !file.starts_with("deletes-") || s.deletes.as_deref() == Some(file);
            link_tree(&dir.join(&name), &dest.join(&name), &keep)?;
        }
        self.inner.wal.copy_through(seq, &dest.join("wal"))?;
        naksha_storage::dirs::sync_dir(dest)?;
        Ok((seq, points))
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Configuration.
    pub fn config(&self) -> &CollectionConfig {
        &self.inner.config
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Insert or replace points. The whole batch is validated first (and rejected
    /// whole on any bad point); the call returns once the batch is durable.
    /// Returns the batch's sequence number.
    ///
    /// Points without a vector get one from their text fields when the collection
    /// has an embedding model (`embed`).
    pub fn upsert(&self, mut points: Vec<Point>) -> Result<u64> {
        let (dim, metric) = (self.inner.config.vectors.dim, self.inner.config.vectors.metric);
        for p in &points {
            check_point(p)?;
        }
        self.fill_vectors(&mut points)?;
        for p in &mut points {
            metric.prepare(&mut p.vector, dim, Some(&p.id))?;
        }
        if points.is_empty() {
            return Ok(self.inner.state.read().applied_seq);
        }
        self.write(WalOp::Upsert(points)).map(|(seq, _)| seq)
    }

    /// Check one point as [`Self::upsert`] would, writing nothing: id, payload
    /// and text limits, and its vector (dimension, finite, non-zero for cosine)
    /// or, without one, the embedding model and the text it would embed.
    /// Bulk loaders use it to set bad items aside before a batch is written.
    pub fn check(&self, p: &Point) -> Result<()> {
        check_point(p)?;
        let (dim, metric) = (self.inner.config.vectors.dim, self.inner.config.vectors.metric);
        if !p.vector.is_empty() {
            return metric.prepare(&mut p.vector.clone(), dim, Some(&p.id)).map_err(Error::from);
        }
        let (_, cfg) = self.embedder().map_err(|_| {
            Error::InvalidArgument(format!(
                "point {}: vector is required (the collection has no embedding model)",
                p.id
            ))
        })?;
        if !cfg.fields.iter().any(|f| p.text.get(f).and_then(Value::as_str).is_some_and(|t| !t.trim().is_empty())) {
            return Err(Error::InvalidArgument(format!(
                "point {}: no vector and none of the embed fields {:?} in its text",
                p.id, cfg.fields
            )));
        }
        Ok(())
    }

    /// Delete points by id; returns how many existed.
    pub fn delete(&self, ids: Vec<PointId>) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.write(WalOp::Delete(ids)).map(|(_, n)| n)
    }

    /// Delete every point that passes `filter`; returns how many. An empty
    /// filter is refused (it would delete everything): use [`Collection::delete_all`].
    pub fn delete_where(&self, filter: &Filter) -> Result<usize> {
        if filter.is_empty() {
            return Err(Error::InvalidArgument(
                "an empty filter matches every point; to delete them all, ask for that explicitly (\"all\": true)"
                    .into(),
            ));
        }
        self.delete_matching(filter)
    }

    /// Delete every point; returns how many.
    pub fn delete_all(&self) -> Result<usize> {
        self.delete_matching(&Filter::default())
    }

    fn delete_matching(&self, filter: &Filter) -> Result<usize> {
        filter.validate()?;
        let ids = {
            let st = self.inner.state.read();
            let mut ids: Vec<PointId> = Vec::new();
            ids.extend(st.active.admitted(None, Some(filter)).map(|s| st.active.ids[s as usize].clone()));
            if let Some(f) = &st.frozen {
                ids.extend(f.mem.admitted(Some(&f.deleted), Some(filter)).map(|s| f.mem.ids[s as usize].clone()));
            }
            for slot in &st.segments {
                for off in slot.matching(filter).iter() {
                    ids.push(slot.seg.id(off as u32)?);
                }
            }
            ids
        };
        self.delete(ids)
    }

    fn write(&self, op: WalOp) -> Result<(u64, usize)> {
        let inner = &self.inner;
        // Back-pressure: a full memtable is flushed before more is logged. If
        // that fails (disk full), the write is refused before it changes anything.
        if inner.state.read().active.len() >= inner.options.max_memtable_points {
            maintenance::flush_for_writer(inner)?;
        }
        let seq = inner.wal.append(&op)?;
        let synced = inner.wal.sync_through(seq);
        let mut gate = inner.gate.lock();
        while *gate != seq {
            inner.gate_cv.wait(&mut gate);
        }
        let applied: Result<(usize, usize)> = match synced {
            Ok(()) => {
                let mut st = inner.state.write();
                let n = st.apply(seq, op);
                Ok((n, st.active.len()))
            }
            Err(e) => Err(e.into()),
        };
        *gate += 1;
        drop(gate);
        inner.gate_cv.notify_all();
        // Durable and applied: from here on nothing may report the write as failed.
        let (applied, pending) = applied?;
        if pending >= inner.options.flush_points {
            if let Some(tx) = inner.wake.lock().as_ref() {
                let _ = tx.send(maintenance::Msg::Wake);
            }
        }
        Ok((seq, applied))
    }

    /// Write the mutable segment out as an immutable one (no-op when empty).
    pub fn flush(&self) -> Result<()> {
        maintenance::flush(&self.inner)
    }

    /// Run one round of the background work now: flush if enough points are
    /// buffered or the WAL is large, then merge until nothing is due.
    pub fn maintain(&self) -> Result<()> {
        maintenance::tick(&self.inner)
    }

    /// Run merges until none is due; returns how many ran.
    pub fn merge(&self) -> Result<usize> {
        let mut n = 0;
        while maintenance::merge_once(&self.inner)? {
            n += 1;
        }
        Ok(n)
    }

    /// Whether a live point has this id.
    pub fn contains(&self, id: &PointId) -> bool {
        self.inner.state.read().ids.contains_key(id)
    }

    /// The point with this id, if it exists.
    pub fn get(&self, id: &PointId) -> Result<Option<Record>> {
        let st = self.inner.state.read();
        let Some(&loc) = st.ids.get(id) else { return Ok(None) };
        let all = Want { payload: true, vector: true, text: true };
        let f = self.materialize(&st, loc, all)?;
        Ok(Some(Record {
            id: id.clone(),
            vector: f.vector.unwrap_or_default(),
            payload: f.payload.unwrap_or_default(),
            text: f.text.unwrap_or_default(),
        }))
    }

    fn materialize(&self, st: &State, loc: Loc, want: Want) -> Result<Fields> {
        let mem_fields = |mem: &Memtable, s: u32| Fields {
            vector: want.vector.then(|| mem.vector(s).to_vec()),
            payload: want.payload.then(|| mem.payloads[s as usize].clone()),
            text: want.text.then(|| mem.texts[s as usize].clone()),
        };
        Ok(match loc {
            Loc::Active(s) => mem_fields(&st.active, s),
            Loc::Frozen(s) => {
                mem_fields(&st.frozen.as_ref().ok_or_else(|| internal("frozen slot without a frozen memtable"))?.mem, s)
            }
            Loc::Segment(id, off) => {
                let seg = &st.slot(id).ok_or_else(|| internal("unknown segment"))?.seg;
                Fields {
                    vector: want.vector.then(|| seg.vector(off).to_vec()),
                    payload: if want.payload { Some(seg.payload(off)?) } else { None },
                    text: if want.text { Some(seg.text(off)?) } else { None },
                }
            }
        })
    }

    /// Live point count.
    pub fn len(&self) -> usize {
        self.inner.state.read().ids.len()
    }

    /// True when the collection holds no live points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sizes and counts.
    pub fn info(&self) -> CollectionInfo {
        let (status, error) = self.health();
        let st = self.inner.state.read();
        let (wal_files, wal_bytes) = self.inner.wal.disk_usage();
        let seg_disk: u64 = st.segments.iter().map(|s| s.seg.disk_bytes()).sum();
        let seg_mem: usize = st.segments.iter().map(|s| s.seg.memory_bytes()).sum();
        let frozen_mem = st.frozen.as_ref().map_or(0, |f| f.mem.heap_bytes());
        CollectionInfo {
            points: st.ids.len(),
            segments: st.segments.len(),
            memtable_points: st.active.len(),
            disk_bytes: seg_disk + wal_bytes,
            memory_bytes: (seg_mem + st.active.heap_bytes() + frozen_mem) as u64,
            wal_files,
            wal_bytes,
            seq: st.applied_seq,
            status,
            error,
        }
    }

    /// `ok`, `degraded` or `read_only`, and what is failing.
    pub fn health(&self) -> (HealthStatus, Option<String>) {
        if let Some(why) = self.inner.wal.poisoned() {
            return (HealthStatus::ReadOnly, Some(why));
        }
        match self.inner.health.lock().failing() {
            Some(why) => (HealthStatus::Degraded, Some(why)),
            None => (HealthStatus::Ok, None),
        }
    }
}

fn internal(what: &str) -> Error {
    Error::Internal(what.to_owned())
}

/// Hard-link every file under `src` into the same place under `dst` (copy
/// where linking fails: another file system, or one without links), skipping
/// top-level files `keep` refuses.
fn link_tree(src: &Path, dst: &Path, keep: &dyn Fn(&str) -> bool) -> Result<()> {
    let io = naksha_storage::Error::from;
    fs_err::create_dir_all(dst).map_err(io)?;
    for entry in fs_err::read_dir(src).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (from, to) = (entry.path(), dst.join(&name));
        if entry.file_type().map_err(io)?.is_dir() {
            link_tree(&from, &to, &|_| true)?;
        } else if keep(&name) && fs_err::hard_link(&from, &to).is_err() {
            fs_err::copy(&from, &to).map_err(io)?;
        }
    }
    Ok(())
}

/// Remove segment directories and temporary files the manifest does not list
/// (left by a flush or merge that crashed before its manifest swap).
fn remove_unlisted(dir: &Path, manifest: &Manifest) -> Result<()> {
    let listed: Vec<String> = manifest.segments.iter().map(|s| manifest::segment_dir_name(s.id)).collect();
    for entry in fs_err::read_dir(dir).map_err(naksha_storage::Error::from)? {
        let entry = entry.map_err(naksha_storage::Error::from)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_seg = name.starts_with("seg-") && !listed.contains(&name);
        if stale_seg || name.ends_with(".tmp") {
            tracing::info!(path = %entry.path().display(), "removing leftover of an interrupted flush or merge");
            let path = entry.path();
            if path.is_dir() {
                fs_err::remove_dir_all(&path).map_err(naksha_storage::Error::from)?;
            } else {
                fs_err::remove_file(&path).map_err(naksha_storage::Error::from)?;
            }
        }
    }
    // Stale deletion bitmaps inside listed segments.
    for s in &manifest.segments {
        let sdir = dir.join(manifest::segment_dir_name(s.id));
        let Ok(rd) = fs_err::read_dir(&sdir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("deletes-") && s.deletes.as_deref() != Some(name.as_str()) {
                let _ = fs_err::remove_file(e.path());
            }
        }
    }
    Ok(())
}
