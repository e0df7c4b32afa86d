//! Scored candidates and the exact (brute-force) top-k scan.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A node and its internal distance (lower is closer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbor {
    /// Internal distance.
    pub distance: f32,
    /// Offset of the node.
    pub node: u32,
}

impl Eq for Neighbor {}

impl Ord for Neighbor {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance.total_cmp(&other.distance).then(self.node.cmp(&other.node))
    }
}

impl PartialOrd for Neighbor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Keeps the `k` closest neighbours seen.
#[derive(Debug)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Neighbor>,
}

impl TopK {
    /// Keep at most `k`.
    pub fn new(k: usize) -> Self {
        Self { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    /// Offer a candidate.
    #[inline]
    pub fn push(&mut self, n: Neighbor) {
        if self.heap.len() < self.k {
            self.heap.push(n);
        } else if let Some(top) = self.heap.peek() {
            if n < *top {
                self.heap.pop();
                self.heap.push(n);
            }
        }
    }

    /// Distance a candidate must beat to enter, if full.
    pub fn bound(&self) -> Option<f32> {
        (self.heap.len() >= self.k).then(|| self.heap.peek().map_or(f32::INFINITY, |n| n.distance))
    }

    /// The kept neighbours, closest first.
    pub fn into_sorted(self) -> Vec<Neighbor> {
        self.heap.into_sorted_vec()
    }
}

/// Exact top-`k` over `count` nodes whose distance `dist(i)` is computed on
/// demand; only nodes for which `admit(i)` holds are considered.
pub fn exact<D, A>(count: usize, k: usize, dist: D, admit: A) -> Vec<Neighbor>
where
    D: Fn(u32) -> f32,
    A: Fn(u32) -> bool,
{
    let mut top = TopK::new(k);
    for i in 0..count as u32 {
        if admit(i) {
            top.push(Neighbor { distance: dist(i), node: i });
        }
    }
    top.into_sorted()
}
