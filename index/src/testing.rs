//! Fixtures shared by tests and benchmarks (feature `testing`): a seeded
//! clustered-Gaussian generator and exact k-NN ground truth.

use crate::metric::Metric;
use crate::topk::{self, Neighbor};

/// SplitMix64: small, fast, seedable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x853c_49e6_748f_ea9b)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.f64().max(1e-300);
        let u2 = self.f64();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// `n` vectors of dimension `dim` in `clusters` clusters, shaped like real
/// embeddings: each cluster has a random centre (~N(0, 1)) and spreads along
/// its own random 12-dimensional subspace (scale `spread`), plus a little
/// isotropic noise (`spread / 10`). Real embedding sets have a low intrinsic
/// dimension like this; isotropic full-rank noise would not.
pub fn clustered(n: usize, dim: usize, clusters: usize, spread: f32, seed: u64) -> Vec<f32> {
    const LATENT: usize = 12;
    let mut rng = Rng::new(seed);
    let clusters = clusters.max(1);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.normal()).collect();
    let norm = 1.0 / (dim as f32).sqrt();
    let bases: Vec<f32> = (0..clusters * LATENT * dim).map(|_| rng.normal() * norm).collect();
    let mut out = Vec::with_capacity(n * dim);
    let mut z = [0f32; LATENT];
    for _ in 0..n {
        let c = rng.below(clusters as u64) as usize;
        z.iter_mut().for_each(|x| *x = rng.normal() * spread * (dim as f32).sqrt() / (LATENT as f32).sqrt());
        let basis = &bases[c * LATENT * dim..(c + 1) * LATENT * dim];
        for j in 0..dim {
            let along: f32 = (0..LATENT).map(|l| z[l] * basis[l * dim + j]).sum();
            out.push(centres[c * dim + j] + along + 0.1 * spread * rng.normal());
        }
    }
    out
}

/// Prepare every vector for `metric` in place (normalise for cosine).
pub fn prepare_all(vectors: &mut [f32], dim: usize, metric: Metric) {
    for v in vectors.chunks_exact_mut(dim) {
        // Generated vectors are finite and non-zero.
        let _ = metric.prepare(v, dim, None);
    }
}

/// Exact `k` nearest neighbours of `query` among `vectors` (prepared).
pub fn exact_knn(vectors: &[f32], dim: usize, metric: Metric, query: &[f32], k: usize) -> Vec<Neighbor> {
    let n = vectors.len() / dim;
    topk::exact(n, k, |i| metric.distance(query, &vectors[i as usize * dim..(i as usize + 1) * dim]), |_| true)
}

/// Fraction of `truth` found in `got` (recall@k).
pub fn recall(truth: &[u32], got: &[u32]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    truth.iter().filter(|t| got.contains(t)).count() as f64 / truth.len() as f64
}
