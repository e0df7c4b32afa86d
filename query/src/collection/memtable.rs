//! The mutable segment: points appended in memory, searched exactly; their
//! text fields go into an in-memory BM25 index as they arrive.

use std::sync::Arc;

use naksha_index::bitset::Bitset;
use naksha_index::metric::Metric;
use naksha_index::text::{TextConfig, TextIndex};
use naksha_index::topk::{Neighbor, TopK};
use naksha_storage::point::{JsonSize, Point, PointId};
use serde_json::Value;

use crate::filter::Filter;

/// Points written since the last flush. Slots are never reused; a replaced
/// or deleted point is marked in `deleted`.
#[derive(Debug, Default)]
pub(crate) struct Memtable {
    pub(crate) ids: Vec<PointId>,
    pub(crate) vectors: Vec<f32>,
    pub(crate) payloads: Vec<Value>,
    pub(crate) texts: Vec<Value>,
    pub(crate) deleted: Bitset,
    /// BM25 index of the text fields (when the collection has any), keyed by slot.
    pub(crate) text: Option<Arc<TextIndex>>,
    dim: usize,
    /// Heap held by ids, payloads and text fields (about; replaced and deleted
    /// points count until the flush drops them).
    value_bytes: usize,
}

impl Memtable {
    pub(crate) fn new(dim: usize, text: Option<&TextConfig>) -> crate::Result<Self> {
        let text = text.map(TextIndex::in_memory).transpose()?.map(Arc::new);
        Ok(Self { dim, text, ..Self::default() })
    }

    /// Slots used (live and deleted).
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn push(&mut self, p: Point) -> u32 {
        let slot = self.ids.len() as u32;
        if let Some(t) = &self.text {
            // Only fails if tantivy's indexing thread died; the point stays
            // stored and the segment the flush writes indexes it again.
            if let Err(e) = t.append(slot, &p.text) {
                tracing::error!(error = %e, id = %p.id, "text index append failed");
            }
        }
        self.value_bytes += JsonSize::of(&p.payload).heap_bytes + JsonSize::of(&p.text).heap_bytes;
        if let PointId::Str(s) = &p.id {
            self.value_bytes += s.len();
        }
        self.ids.push(p.id);
        self.vectors.extend_from_slice(&p.vector);
        self.payloads.push(p.payload);
        self.texts.push(p.text);
        self.deleted.grow(self.ids.len());
        slot
    }

    pub(crate) fn vector(&self, slot: u32) -> &[f32] {
        &self.vectors[slot as usize * self.dim..(slot as usize + 1) * self.dim]
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.vectors.capacity() * 4
            + self.ids.capacity() * std::mem::size_of::<PointId>()
            + (self.payloads.capacity() + self.texts.capacity()) * std::mem::size_of::<Value>()
            + self.value_bytes
    }

    /// Slots that are live (not in `deleted` nor `extra`) and pass `filter`.
    pub(crate) fn admitted<'a>(
        &'a self,
        extra: Option<&'a Bitset>,
        filter: Option<&'a Filter>,
    ) -> impl Iterator<Item = u32> + 'a {
        (0..self.len() as u32).filter(move |&s| {
            !self.deleted.contains(s as usize)
                && !extra.is_some_and(|e| e.contains(s as usize))
                && filter.is_none_or(|f| f.matches(&self.payloads[s as usize]))
        })
    }

    /// Admitted slots as a bitset (for the text index); `None` when every slot is.
    pub(crate) fn admitted_set(&self, extra: Option<&Bitset>, filter: Option<&Filter>) -> Option<Bitset> {
        if filter.is_none() && self.deleted.count() == 0 && extra.is_none_or(|e| e.count() == 0) {
            return None;
        }
        let mut set = Bitset::new(self.len());
        for s in self.admitted(extra, filter) {
            set.insert(s as usize);
        }
        Some(set)
    }

    /// Exact top-`k` among admitted slots.
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        metric: Metric,
        extra: Option<&Bitset>,
        filter: Option<&Filter>,
    ) -> Vec<Neighbor> {
        let mut top = TopK::new(k);
        for s in self.admitted(extra, filter) {
            top.push(Neighbor { distance: metric.distance(query, self.vector(s)), node: s });
        }
        top.into_sorted()
    }
}
