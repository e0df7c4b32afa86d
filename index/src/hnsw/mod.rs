//! A hierarchical navigable small-world graph, written for Naksha.
//!
//! | file        | responsibility                                                      |
//! |-------------|---------------------------------------------------------------------|
//! | `mod.rs`    | parameters, the [`Scorer`] abstraction, links layout                |
//! | `search.rs` | the layer walk shared by build and search; visited set; scratch     |
//! | `build.rs`  | [`HnswBuilder`]: parallel construction and incremental inserts      |
//! | `graph.rs`  | [`Graph`]: the frozen graph, owned or `mmap`ed, and its file format |
//!
//! ```text
//!  level 2   e ─────────────── x            upper levels: sparse, m links per node,
//!  level 1   e ──── a ──── x ──── b         stored in per-node blocks (`upper`)
//!  level 0   e─c─a─d─f─x─g─b─h─i─j          every node, 2m links (`l0`, one flat array)
//! ```
//!
//! Links are flat `u32` arrays, never `Vec<Vec<_>>`: level 0 is `n × (1 + m0)`
//! words (`[count, n1, n2, ...]`), upper levels are blocks of `1 + m` words
//! located through `upper_offsets`. Neighbours are chosen with the heuristic of
//! Malkov & Yashunin (keep a candidate only if it is closer to the new node than
//! to every neighbour already kept). A visited set of generation stamps is
//! reused across queries; deleted and filtered-out nodes are walked through but
//! never returned.

mod build;
mod graph;
mod search;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use build::HnswBuilder;
pub use graph::{Graph, FORMAT_VERSION, MAGIC, OLDEST_READABLE_VERSION};

use crate::distance;
use crate::metric::Metric;

/// Largest supported `m` (level 0 then holds up to `2m` links).
pub const MAX_M: usize = 64;
const MAX_LEVEL: u8 = 16;
const NONE: u32 = u32::MAX;

/// Construction parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HnswParams {
    /// Links per node on upper levels (level 0 keeps `2m`).
    pub m: usize,
    /// Beam width while inserting.
    pub ef_construction: usize,
    /// Seed for level assignment (builds are deterministic per seed in structure
    /// of levels; link order can vary with thread scheduling).
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self { m: 16, ef_construction: 200, seed: 0x005e_ed0f_4a45_4841 }
    }
}

impl HnswParams {
    /// Clamp parameters to supported ranges.
    pub fn sanitized(self) -> Self {
        Self { m: self.m.clamp(2, MAX_M), ef_construction: self.ef_construction.max(self.m).max(1), seed: self.seed }
    }

    /// Level of node `i`: geometric with multiplier `1 / ln(m)`, from a hash of seed and node.
    fn level_of(&self, i: u32) -> u8 {
        let mut z = self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let level = (-u.ln() / (self.m as f64).ln()).floor();
        level.min(MAX_LEVEL as f64) as u8
    }
}

/// Distance from a fixed query to stored node `i`.
pub trait Scorer {
    /// Internal distance (lower is closer) to node `node`.
    fn distance(&self, node: u32) -> f32;
    /// Hint that `node` will be scored soon.
    fn prefetch(&self, _node: u32) {}
}

/// Scores full-precision vectors stored contiguously (`node * dim ..`).
#[derive(Debug, Clone, Copy)]
pub struct F32Scorer<'a> {
    query: &'a [f32],
    vectors: &'a [f32],
    dim: usize,
    metric: Metric,
    /// Resolved once per query rather than once per distance.
    kernel: fn(&[f32], &[f32]) -> f32,
}

impl<'a> F32Scorer<'a> {
    /// Score a prepared `query` (normalised for cosine) against `vectors` (`n × dim`).
    pub fn new(query: &'a [f32], vectors: &'a [f32], dim: usize, metric: Metric) -> Self {
        let k = distance::active();
        let kernel = if metric == Metric::L2 { k.l2sq } else { k.dot };
        Self { query, vectors, dim, metric, kernel }
    }
}

impl Scorer for F32Scorer<'_> {
    #[inline]
    fn distance(&self, node: u32) -> f32 {
        let at = node as usize * self.dim;
        let raw = (self.kernel)(self.query, &self.vectors[at..at + self.dim]);
        match self.metric {
            Metric::Cosine => 1.0 - raw,
            Metric::Dot => -raw,
            Metric::L2 => raw,
        }
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        let at = node as usize * self.dim;
        distance::prefetch(&self.vectors[at..at + self.dim]);
    }
}
