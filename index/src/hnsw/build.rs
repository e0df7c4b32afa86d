//! Construction: parallel (rayon, one lock per node) and incremental.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;

use super::graph::Graph;
use super::search::{greedy, search_layer, with_scratch, Links};
use super::{F32Scorer, HnswParams, Scorer, MAX_M, NONE};
use crate::metric::Metric;
use crate::topk::Neighbor;

/// A graph under construction. Inserts take `&self` and may run in parallel;
/// [`HnswBuilder::push`] grows it one vector at a time; [`HnswBuilder::freeze`]
/// turns it into a compact [`Graph`].
#[derive(Debug)]
pub struct HnswBuilder {
    dim: usize,
    metric: Metric,
    params: HnswParams,
    vectors: Vec<f32>,
    levels: Vec<u8>,
    l0: Vec<AtomicU32>,
    upper_offsets: Vec<u32>,
    upper: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
    entry: RwLock<Option<(u32, u8)>>,
    /// For `dot`: each node's extra coordinate `sqrt(M² - ‖x‖²)` (see [`HnswBuilder::node_distance`]).
    phi: Vec<f32>,
    max_norm_sq: f32,
}

struct BuildScorer<'a> {
    b: &'a HnswBuilder,
    q: u32,
}

impl Scorer for BuildScorer<'_> {
    #[inline]
    fn distance(&self, node: u32) -> f32 {
        self.b.node_distance(self.q, node)
    }
    #[inline]
    fn prefetch(&self, node: u32) {
        crate::distance::prefetch(self.b.vector(node));
    }
}

impl Links for HnswBuilder {
    #[inline]
    fn with_neighbours<R>(&self, node: u32, level: usize, f: impl FnOnce(&[u32]) -> R) -> R {
        let mut buf = [0u32; 2 * MAX_M];
        let count = {
            let _guard = self.locks[node as usize].lock();
            let list = self.list(node, level);
            let count = (list[0].load(Relaxed) as usize).min(list.len() - 1);
            for (dst, src) in buf.iter_mut().zip(&list[1..1 + count]) {
                *dst = src.load(Relaxed);
            }
            count
        };
        f(&buf[..count])
    }
}

impl HnswBuilder {
    /// An empty graph for `dim`-dimensional vectors (already prepared for `metric`).
    pub fn new(dim: usize, metric: Metric, params: HnswParams) -> Self {
        Self {
            dim,
            metric,
            params: params.sanitized(),
            vectors: Vec::new(),
            levels: Vec::new(),
            l0: Vec::new(),
            upper_offsets: Vec::new(),
            upper: Vec::new(),
            locks: Vec::new(),
            entry: RwLock::new(None),
            phi: Vec::new(),
            max_norm_sq: 0.0,
        }
    }

    /// Build a graph over `vectors` (`n × dim`, prepared) in parallel on the rayon pool.
    pub fn build(dim: usize, metric: Metric, params: HnswParams, vectors: Vec<f32>) -> Self {
        let mut b = Self::new(dim, metric, params);
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        b.vectors = vectors;
        b.vectors.truncate(n * dim);
        if metric == Metric::Dot {
            b.max_norm_sq = b.vectors.chunks_exact(dim).map(|v| crate::distance::dot(v, v)).fold(0.0, f32::max);
        }
        b.allocate(n);
        if n > 0 {
            b.insert(0);
            (1..n as u32).into_par_iter().for_each(|i| b.insert(i));
        }
        b
    }

    fn m0(&self) -> usize {
        2 * self.params.m
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// The stored vector of `node`.
    #[inline]
    pub fn vector(&self, node: u32) -> &[f32] {
        let at = node as usize * self.dim;
        &self.vectors[at..at + self.dim]
    }

    /// Grow link storage so nodes up to `n` exist (vectors must already be there).
    fn allocate(&mut self, n: usize) {
        let (m, m0) = (self.params.m, self.m0());
        for i in self.levels.len()..n {
            let level = self.params.level_of(i as u32);
            self.levels.push(level);
            self.l0.extend((0..=m0).map(|_| AtomicU32::new(0)));
            if level > 0 {
                self.upper_offsets.push((self.upper.len() / (m + 1)) as u32);
                self.upper.extend((0..level as usize * (m + 1)).map(|_| AtomicU32::new(0)));
            } else {
                self.upper_offsets.push(NONE);
            }
            self.locks.push(Mutex::new(()));
            if self.metric == Metric::Dot {
                let v = self.vector(i as u32);
                self.phi.push((self.max_norm_sq - crate::distance::dot(v, v)).max(0.0).sqrt());
            }
        }
    }

    /// Distance between two stored nodes, as construction sees it. For `dot`
    /// (not a metric: long vectors become hubs and recall collapses) nodes are
    /// compared in the standard MIPS-to-L2 space: `x' = [x, sqrt(M² - ‖x‖²)]`,
    /// where a query `q' = [q, 0]` has `‖q' - x'‖² = ‖q‖² + M² - 2q·x`, so the
    /// search can keep using plain `-q·x`: the order is the same.
    #[inline]
    fn node_distance(&self, a: u32, b: u32) -> f32 {
        match self.metric {
            Metric::Dot => {
                let d = self.phi[a as usize] - self.phi[b as usize];
                crate::distance::l2sq(self.vector(a), self.vector(b)) + d * d
            }
            m => m.distance(self.vector(a), self.vector(b)),
        }
    }

    fn list(&self, node: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let s = self.m0() + 1;
            &self.l0[node as usize * s..(node as usize + 1) * s]
        } else {
            let s = self.params.m + 1;
            let block = self.upper_offsets[node as usize] as usize + level - 1;
            &self.upper[block * s..(block + 1) * s]
        }
    }

    fn write_list(&self, node: u32, level: usize, nbrs: &[Neighbor]) {
        let list = self.list(node, level);
        let count = nbrs.len().min(list.len() - 1);
        for (dst, n) in list[1..].iter().zip(&nbrs[..count]) {
            dst.store(n.node, Relaxed);
        }
        list[0].store(count as u32, Relaxed);
    }

    /// The neighbour-selection heuristic: walk candidates closest first and keep
    /// one only if it is closer to the base than to every neighbour kept so far.
    fn select(&self, candidates: &[Neighbor], m: usize) -> Vec<Neighbor> {
        let mut kept: Vec<Neighbor> = Vec::with_capacity(m);
        for c in candidates {
            if kept.len() >= m {
                break;
            }
            if kept.iter().all(|k| self.node_distance(c.node, k.node) > c.distance) {
                kept.push(*c);
            }
        }
        kept
    }

    /// Add `q` to `node`'s list on `level`, pruning with the heuristic when full.
    fn link_back(&self, node: u32, q: u32, distance: f32, level: usize) {
        let cap = if level == 0 { self.m0() } else { self.params.m };
        let _guard = self.locks[node as usize].lock();
        let list = self.list(node, level);
        let count = list[0].load(Relaxed) as usize;
        if list[1..1 + count].iter().any(|x| x.load(Relaxed) == q) {
            return;
        }
        if count < cap {
            list[1 + count].store(q, Relaxed);
            list[0].store(count as u32 + 1, Relaxed);
            return;
        }
        let mut cands: Vec<Neighbor> = list[1..1 + count]
            .iter()
            .map(|x| {
                let x = x.load(Relaxed);
                Neighbor { distance: self.node_distance(node, x), node: x }
            })
            .collect();
        cands.push(Neighbor { distance, node: q });
        cands.sort_unstable();
        let kept = self.select(&cands, cap);
        self.write_list(node, level, &kept);
    }

    /// Insert node `q`, whose vector and level slot already exist.
    fn insert(&self, q: u32) {
        let lq = self.levels[q as usize];
        let entry = *self.entry.read();
        let Some((ep, max_level)) = entry else {
            let mut e = self.entry.write();
            if e.is_none() {
                *e = Some((q, lq));
                return;
            }
            drop(e);
            return self.insert(q);
        };
        let scorer = BuildScorer { b: self, q };
        let mut cur = Neighbor { distance: scorer.distance(ep), node: ep };
        for level in (lq as usize + 1..=max_level as usize).rev() {
            cur = greedy(self, &scorer, cur, level);
        }
        let mut entries = vec![cur];
        let n = self.len();
        for level in (0..=lq.min(max_level) as usize).rev() {
            let (mut found, _) = with_scratch(|s| {
                search_layer(self, &scorer, &entries, self.params.ef_construction, level, n, |_| true, s)
            });
            found.retain(|c| c.node != q);
            let selected = self.select(&found, self.params.m);
            {
                let _guard = self.locks[q as usize].lock();
                self.write_list(q, level, &selected);
            }
            for nb in &selected {
                self.link_back(nb.node, q, nb.distance, level);
            }
            if !found.is_empty() {
                entries = found;
            }
        }
        if lq > max_level {
            let mut e = self.entry.write();
            if e.is_none_or(|(_, l)| lq > l) {
                *e = Some((q, lq));
            }
        }
    }

    /// Append one prepared vector and link it into the graph (incremental insert).
    /// Returns the new node's offset.
    pub fn push(&mut self, vector: &[f32]) -> u32 {
        assert_eq!(vector.len(), self.dim, "vector dimension must match the graph");
        let q = self.len() as u32;
        self.vectors.extend_from_slice(vector);
        self.allocate(q as usize + 1);
        self.insert(q);
        q
    }

    /// Search the graph under construction (same walk as [`Graph::search`]).
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<Neighbor> {
        let Some((ep, max_level)) = *self.entry.read() else { return Vec::new() };
        let scorer = F32Scorer::new(query, &self.vectors, self.dim, self.metric);
        let mut cur = Neighbor { distance: scorer.distance(ep), node: ep };
        for level in (1..=max_level as usize).rev() {
            cur = greedy(self, &scorer, cur, level);
        }
        let (mut out, _) = with_scratch(|s| search_layer(self, &scorer, &[cur], ef.max(k), 0, self.len(), |_| true, s));
        out.truncate(k);
        out
    }

    /// Finish construction: compact links into plain arrays. Returns the graph
    /// and the vectors it was built over.
    pub fn freeze(self) -> (Graph, Vec<f32>) {
        let entry = *self.entry.read();
        let take = |v: Vec<AtomicU32>| v.into_iter().map(AtomicU32::into_inner).collect::<Vec<u32>>();
        let graph =
            Graph::from_parts(self.params.m, entry, self.levels, take(self.l0), self.upper_offsets, take(self.upper));
        (graph, self.vectors)
    }
}
