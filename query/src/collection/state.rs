//! The in-memory state of a collection: where every live id is, which
//! segment offsets are deleted, and applying logged operations.

use std::collections::HashMap;
use std::sync::Arc;

use naksha_index::bitset::Bitset;
use naksha_index::segment::Segment;
use naksha_storage::manifest::Manifest;
use naksha_storage::point::PointId;
use naksha_storage::wal::WalOp;

use super::memtable::Memtable;
use crate::filter::Filter;

/// Where a live point is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Loc {
    /// Slot in the active memtable.
    Active(u32),
    /// Slot in the frozen memtable being flushed.
    Frozen(u32),
    /// Segment id and offset.
    Segment(u64, u32),
}

/// A memtable being written out as a segment.
#[derive(Debug)]
pub(crate) struct Frozen {
    pub(crate) mem: Arc<Memtable>,
    /// Deletions since the freeze (the memtable itself is shared, read-only).
    pub(crate) deleted: Bitset,
    /// Last sequence number applied to it.
    pub(crate) seq: u64,
    /// Id reserved for its segment.
    pub(crate) segment_id: u64,
}

/// One live segment and its deletions.
#[derive(Debug)]
pub(crate) struct SegmentSlot {
    pub(crate) id: u64,
    pub(crate) seg: Arc<Segment>,
    pub(crate) deleted: Bitset,
    /// Deletion bitmap file currently referenced by the manifest.
    pub(crate) deletes_file: Option<String>,
    /// Deletions changed since they were last persisted.
    pub(crate) dirty: bool,
}

impl SegmentSlot {
    pub(crate) fn live(&self) -> usize {
        self.seg.len() - self.deleted.count()
    }

    /// Live offsets that pass `filter`.
    pub(crate) fn matching(&self, filter: &Filter) -> Bitset {
        let seg = &self.seg;
        let mut set = filter.evaluate(seg.len(), seg.payload_index(), |i| seg.payload(i).unwrap_or_default());
        set.and_not(&self.deleted);
        set
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) active: Memtable,
    pub(crate) frozen: Option<Frozen>,
    pub(crate) segments: Vec<SegmentSlot>,
    pub(crate) ids: HashMap<PointId, Loc>,
    pub(crate) applied_seq: u64,
    pub(crate) manifest: Manifest,
    /// The manifest on disk is behind memory (a store failed): store it again.
    pub(crate) manifest_stale: bool,
}

impl State {
    pub(crate) fn slot(&self, id: u64) -> Option<&SegmentSlot> {
        self.segments.iter().find(|s| s.id == id)
    }

    /// Id of the point at `loc`.
    pub(crate) fn id_at(&self, loc: Loc) -> crate::Result<PointId> {
        Ok(match loc {
            Loc::Active(s) => self.active.ids[s as usize].clone(),
            Loc::Frozen(s) => {
                self.frozen.as_ref().map(|f| f.mem.ids[s as usize].clone()).ok_or_else(|| super::internal("frozen"))?
            }
            Loc::Segment(id, off) => self.slot(id).ok_or_else(|| super::internal("segment"))?.seg.id(off)?,
        })
    }

    fn mark_deleted(&mut self, loc: Loc) {
        match loc {
            Loc::Active(s) => {
                self.active.deleted.insert(s as usize);
            }
            Loc::Frozen(s) => {
                if let Some(f) = &mut self.frozen {
                    f.deleted.insert(s as usize);
                }
            }
            Loc::Segment(id, off) => {
                if let Some(slot) = self.segments.iter_mut().find(|s| s.id == id) {
                    slot.deleted.insert(off as usize);
                    slot.dirty = true;
                }
            }
        }
    }

    /// Remove `id` if live; returns whether it was.
    pub(crate) fn remove(&mut self, id: &PointId) -> bool {
        match self.ids.remove(id) {
            Some(loc) => {
                self.mark_deleted(loc);
                true
            }
            None => false,
        }
    }

    /// Apply a logged operation (already validated). Returns the number of
    /// points upserted or actually deleted.
    pub(crate) fn apply(&mut self, seq: u64, op: WalOp) -> usize {
        let n = match op {
            WalOp::Upsert(points) => {
                let n = points.len();
                for p in points {
                    self.remove(&p.id);
                    let id = p.id.clone();
                    let slot = self.active.push(p);
                    self.ids.insert(id, Loc::Active(slot));
                }
                n
            }
            WalOp::Delete(ids) => ids.iter().filter(|id| self.remove(id)).count(),
        };
        self.applied_seq = seq;
        n
    }
}
