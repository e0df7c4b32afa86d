//! Flush, merge, manifest persistence and the background worker.
//!
//! Both flush and merge build their new segment *outside* the state lock (so
//! reads and writes continue), in `seg-{id}.tmp/`, fsync it, rename it into
//! place, and only then take the write lock briefly to install it and swap
//! the manifest. A crash before the swap leaves an unlisted directory that
//! recovery removes; a crash after it leaves WAL records that replay skips.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use naksha_index::bitset::Bitset;
use naksha_index::segment::{self, Segment, SegmentData};
use naksha_storage::manifest::{self, SegmentEntry};

use super::state::{Frozen, Loc, SegmentSlot, State};
use super::{Inner, Memtable};
use crate::{Error, Result};

/// Shortest and longest wait before background work that failed is retried.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Failures of a collection's flushes and merges. Retries back off
/// exponentially, and the log gets one line per change of state (failing,
/// failing differently, recovered), not one per attempt.
#[derive(Debug, Default)]
pub(crate) struct Health {
    error: Option<String>,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Health {
    /// The current failure, if background work is failing.
    pub(crate) fn failing(&self) -> Option<String> {
        self.error.clone()
    }

    fn record(&mut self, name: &str, result: &Result<()>) {
        match result {
            Ok(()) => {
                if let Some(was) = self.error.take() {
                    tracing::info!(collection = name, after = self.failures, error = %was, "background flush and merge work again");
                }
                self.failures = 0;
                self.retry_at = None;
            }
            Err(e) => {
                let msg = e.to_string();
                self.failures = self.failures.saturating_add(1);
                let wait = RETRY_MIN.saturating_mul(1 << self.failures.min(7).saturating_sub(1)).min(RETRY_MAX);
                self.retry_at = Some(Instant::now() + wait);
                if self.error.as_deref() != Some(msg.as_str()) {
                    tracing::error!(collection = name, error = %msg, retry_in = ?wait, "background flush or merge failed; retrying with back-off");
                    self.error = Some(msg);
                }
            }
        }
    }

    /// How long to wait before the next attempt (zero when due).
    fn wait(&self) -> Option<Duration> {
        self.retry_at.map(|t| t.saturating_duration_since(Instant::now()))
    }
}

/// A flush a writer needs before it may log more (the memtable is full). While
/// flushes are failing and their back-off has not run out, the writer is
/// refused at once instead of repeating a doomed segment build per request.
pub(super) fn flush_for_writer(inner: &Inner) -> Result<()> {
    {
        let h = inner.health.lock();
        if let (Some(err), Some(wait)) = (&h.error, h.wait()) {
            if !wait.is_zero() {
                return Err(Error::Unavailable(format!(
                    "collection {:?} is full in memory and cannot flush: {err}",
                    inner.name
                )));
            }
        }
    }
    let result = flush(inner);
    inner.health.lock().record(&inner.name, &result);
    result
}

/// Write `data` as segment `id` and open it (mapped).
fn build_segment(inner: &Inner, id: u64, data: SegmentData) -> Result<Segment> {
    let name = manifest::segment_dir_name(id);
    let tmp = inner.dir.join(format!("{name}.tmp"));
    let dir = inner.dir.join(&name);
    if tmp.exists() {
        fs_err::remove_dir_all(&tmp).map_err(naksha_storage::Error::from)?;
    }
    Segment::write(&tmp, &inner.seg_config, data)?;
    fs_err::rename(&tmp, &dir).map_err(naksha_storage::Error::from)?;
    naksha_storage::dirs::sync_dir(&inner.dir)?;
    inner.metrics.graph_builds.fetch_add(1, Relaxed);
    Ok(Segment::open(&dir, &inner.seg_config)?)
}

/// Persist dirty deletion bitmaps and the manifest (caller holds the write lock).
///
/// Memory may already hold the new state when this fails (a segment installed,
/// a merge's sources replaced); the manifest on disk then still describes the
/// old one, which recovery reads together with the untrimmed WAL.
/// `manifest_stale` makes the next round of background work retry.
pub(super) fn persist(inner: &Inner, st: &mut State) -> Result<()> {
    st.manifest_stale = true;
    let State { segments, manifest, .. } = st;
    let mut superseded = Vec::new();
    for slot in segments.iter_mut().filter(|s| s.dirty) {
        let file = format!("deletes-{:08}.bin", manifest.next_segment_id);
        manifest.next_segment_id += 1;
        segment::write_deletes(&slot.seg.dir().join(&file), &slot.deleted)?;
        naksha_storage::dirs::sync_dir(slot.seg.dir())?;
        if let Some(old) = slot.deletes_file.replace(file) {
            superseded.push(slot.seg.dir().join(old));
        }
        slot.dirty = false;
    }
    manifest.segments = segments
        .iter()
        .map(|s| SegmentEntry { id: s.id, points: s.seg.len() as u64, deletes: s.deletes_file.clone() })
        .collect();
    manifest.store(&inner.dir)?;
    st.manifest_stale = false;
    for path in superseded {
        let _ = fs_err::remove_file(path);
    }
    Ok(())
}

/// Flush the active memtable into a new segment.
pub(super) fn flush(inner: &Inner) -> Result<()> {
    let _maintenance = inner.maintenance.lock();
    let started = Instant::now();
    // Freeze (or resume a flush that failed earlier).
    let fresh = Memtable::new(inner.config.vectors.dim, inner.seg_config.text.as_ref())?;
    let (mem, snapshot_deleted, seq, segment_id) = {
        let mut st = inner.state.write();
        if st.frozen.is_none() {
            if st.active.len() == 0 {
                // Nothing buffered: make deletions durable so the WAL can be trimmed.
                if st.segments.iter().any(|s| s.dirty) || st.manifest.durable_seq < st.applied_seq || st.manifest_stale
                {
                    st.manifest.durable_seq = st.applied_seq;
                    persist(inner, &mut st)?;
                    let durable = st.applied_seq;
                    drop(st);
                    inner.wal.rotate()?;
                    inner.wal.truncate_through(durable)?;
                }
                return Ok(());
            }
            inner.wal.rotate()?;
            let mem = Arc::new(std::mem::replace(&mut st.active, fresh));
            let segment_id = st.manifest.next_segment_id;
            st.manifest.next_segment_id += 1;
            let seq = st.applied_seq;
            for (slot, id) in mem.ids.iter().enumerate() {
                if !mem.deleted.contains(slot) {
                    st.ids.insert(id.clone(), Loc::Frozen(slot as u32));
                }
            }
            st.frozen = Some(Frozen { deleted: mem.deleted.clone(), mem, seq, segment_id });
        }
        let f = st.frozen.as_ref().map(|f| (f.mem.clone(), f.deleted.clone(), f.seq, f.segment_id));
        f.ok_or_else(|| super::internal("no frozen memtable"))?
    };
    // Build outside the lock, from the points live at this moment.
    let live: Vec<u32> = (0..mem.len() as u32).filter(|&s| !snapshot_deleted.contains(s as usize)).collect();
    let mut data = SegmentData::default();
    for &s in &live {
        data.ids.push(mem.ids[s as usize].clone());
        data.vectors.extend_from_slice(mem.vector(s));
        data.payloads.push(mem.payloads[s as usize].clone());
        data.texts.push(mem.texts[s as usize].clone());
    }
    let seg = Arc::new(build_segment(inner, segment_id, data)?);
    // Install.
    {
        let mut st = inner.state.write();
        let frozen = st.frozen.take().ok_or_else(|| super::internal("frozen memtable vanished"))?;
        let mut deleted = Bitset::new(live.len());
        for (off, &slot) in live.iter().enumerate() {
            if frozen.deleted.contains(slot as usize) {
                deleted.insert(off);
            } else {
                st.ids.insert(mem.ids[slot as usize].clone(), Loc::Segment(segment_id, off as u32));
            }
        }
        let dirty = deleted.count() > 0;
        st.segments.push(SegmentSlot { id: segment_id, seg, deleted, deletes_file: None, dirty });
        st.manifest.durable_seq = seq;
        st.manifest_stale = true;
        naksha_storage::fault::check("flush.before_manifest", &inner.dir).map_err(naksha_storage::Error::from)?;
        persist(inner, &mut st)?;
    }
    naksha_storage::fault::check("flush.after_manifest", &inner.dir).map_err(naksha_storage::Error::from)?;
    inner.wal.truncate_through(seq)?;
    inner.metrics.flushes.fetch_add(1, Relaxed);
    inner.metrics.flush_micros.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    tracing::debug!(collection = %inner.name, segment = segment_id, points = live.len(), took = ?started.elapsed(), "flushed");
    Ok(())
}

/// Pick segments to merge: every segment with too many deletions, plus the
/// smallest ones when enough small segments have piled up.
fn pick(inner: &Inner, st: &State) -> Vec<u64> {
    let o = &inner.options;
    let mut picked: Vec<u64> = st
        .segments
        .iter()
        .filter(|s| !s.seg.is_empty() && (s.seg.len() - s.live()) as f64 >= o.merge_deleted_ratio * s.seg.len() as f64)
        .map(|s| s.id)
        .collect();
    let mut small: Vec<&SegmentSlot> = st.segments.iter().filter(|s| s.live() < o.merge_max_points).collect();
    if small.len() >= o.merge_min_segments.max(2) {
        small.sort_by_key(|s| s.live());
        for s in small.into_iter().take(o.merge_min_segments.max(2)) {
            if !picked.contains(&s.id) {
                picked.push(s.id);
            }
        }
    }
    picked
}

/// Run one merge if one is due; returns whether one ran.
pub(super) fn merge_once(inner: &Inner) -> Result<bool> {
    let _maintenance = inner.maintenance.lock();
    let started = Instant::now();
    let (sources, new_id) = {
        let mut st = inner.state.write();
        let picked = pick(inner, &st);
        if picked.is_empty() {
            return Ok(false);
        }
        let sources: Vec<(u64, Arc<Segment>, Bitset)> = st
            .segments
            .iter()
            .filter(|s| picked.contains(&s.id))
            .map(|s| (s.id, s.seg.clone(), s.deleted.clone()))
            .collect();
        let id = st.manifest.next_segment_id;
        st.manifest.next_segment_id += 1;
        (sources, id)
    };
    let mut data = SegmentData::default();
    let mut origin: Vec<(u64, u32)> = Vec::new();
    for (id, seg, deleted) in &sources {
        for off in (0..seg.len() as u32).filter(|&o| !deleted.contains(o as usize)) {
            data.ids.push(seg.id(off)?);
            data.vectors.extend_from_slice(seg.vector(off));
            data.payloads.push(seg.payload(off)?);
            data.texts.push(seg.text(off)?);
            origin.push((*id, off));
        }
    }
    if data.ids.is_empty() {
        // Every point is deleted: drop the segments, write nothing.
        let doomed: Vec<std::path::PathBuf> = {
            let mut st = inner.state.write();
            st.segments.retain(|s| !sources.iter().any(|(id, _, _)| *id == s.id));
            persist(inner, &mut st)?;
            sources.iter().map(|(_, s, _)| s.dir().to_owned()).collect()
        };
        for dir in doomed {
            let _ = fs_err::remove_dir_all(&dir);
        }
        inner.metrics.merges.fetch_add(1, Relaxed);
        return Ok(true);
    }
    let ids = data.ids.clone();
    let seg = Arc::new(build_segment(inner, new_id, data)?);
    let doomed: Vec<std::path::PathBuf> = {
        let mut st = inner.state.write();
        let mut deleted = Bitset::new(origin.len());
        for (new_off, &(sid, off)) in origin.iter().enumerate() {
            let still_live = st.ids.get(&ids[new_off]) == Some(&Loc::Segment(sid, off));
            if still_live {
                st.ids.insert(ids[new_off].clone(), Loc::Segment(new_id, new_off as u32));
            } else {
                deleted.insert(new_off);
            }
        }
        let dirty = deleted.count() > 0;
        let doomed = sources.iter().map(|(_, s, _)| s.dir().to_owned()).collect();
        st.segments.retain(|s| !sources.iter().any(|(id, _, _)| *id == s.id));
        st.segments.push(SegmentSlot { id: new_id, seg, deleted, deletes_file: None, dirty });
        st.manifest_stale = true;
        naksha_storage::fault::check("merge.before_manifest", &inner.dir).map_err(naksha_storage::Error::from)?;
        persist(inner, &mut st)?;
        doomed
    };
    naksha_storage::fault::check("merge.after_manifest", &inner.dir).map_err(naksha_storage::Error::from)?;
    for dir in doomed {
        // Searches still holding the old segment keep their mappings; unlinking is safe.
        if let Err(e) = fs_err::remove_dir_all(&dir) {
            tracing::warn!(error = %e, "could not remove a merged segment; it will be removed at the next open");
        }
    }
    inner.metrics.merges.fetch_add(1, Relaxed);
    inner.metrics.merge_micros.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    tracing::debug!(collection = %inner.name, segment = new_id, sources = sources.len(), took = ?started.elapsed(), "merged");
    Ok(true)
}

/// One round of background work: flush when enough points are buffered or the
/// WAL has grown large, then merge until nothing is due.
pub(super) fn tick(inner: &Inner) -> Result<()> {
    let (buffered, stale) = {
        let st = inner.state.read();
        (st.active.len(), st.manifest_stale || st.frozen.is_some())
    };
    let (_, wal_bytes) = inner.wal.disk_usage();
    if buffered >= inner.options.flush_points || wal_bytes > inner.options.max_wal_bytes || stale {
        flush(inner)?;
    }
    while !inner.stopping.load(Relaxed) {
        if !merge_once(inner)? {
            break;
        }
    }
    Ok(())
}

/// Messages to the background worker.
pub(crate) enum Msg {
    /// Check whether a flush or merge is due.
    Wake,
    /// Exit.
    Stop,
}

/// The background flush/merge thread of one collection.
pub(super) struct Worker {
    tx: mpsc::Sender<Msg>,
    handle: JoinHandle<()>,
}

impl Worker {
    pub(super) fn start(inner: Arc<Inner>) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Msg>();
        *inner.wake.lock() = Some(tx.clone());
        let handle = std::thread::Builder::new()
            .name(format!("naksha-maint-{}", inner.name))
            .spawn(move || loop {
                match rx.recv_timeout(RETRY_MIN) {
                    Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    Ok(Msg::Wake) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
                // After a failure, wake-ups from writers wait for the back-off.
                if inner.health.lock().wait().is_some_and(|w| !w.is_zero()) {
                    continue;
                }
                if inner.wal.poisoned().is_some() {
                    continue; // read-only until reopened: nothing to flush into
                }
                let result = tick(&inner);
                if result.is_err() {
                    inner.metrics.background_failures.fetch_add(1, Relaxed);
                }
                inner.health.lock().record(&inner.name, &result);
            })
            .map_err(naksha_storage::Error::from)?;
        Ok(Self { tx, handle })
    }

    pub(super) fn stop(self) {
        let _ = self.tx.send(Msg::Stop);
        let _ = self.handle.join();
    }
}
