//! The mutable segment: points appended in memory, searched exactly.

use naksha_index::bitset::Bitset;
use naksha_index::metric::Metric;
use naksha_index::topk::{Neighbor, TopK};
use naksha_storage::point::{Point, PointId};
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
    dim: usize,
}

impl Memtable {
    pub(crate) fn new(dim: usize) -> Self {
        Self { dim, ..Self::default() }
    }

    /// Slots used (live and deleted).
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn push(&mut self, p: Point) -> u32 {
        let slot = self.ids.len() as u32;
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
        self.vectors.len() * 4 + self.ids.len() * 32 + self.payloads.len() * 64 + self.texts.len() * 64
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
