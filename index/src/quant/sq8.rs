//! int8 scalar quantization with one affine map per collection segment:
//! `x ≈ offset + scale · c`, `c ∈ [-127, 127]`.
//!
//! With one map for every dimension, distances between codes stay linear:
//! `a·b ≈ s²·Σcᵃcᵇ + s·o·(Σcᵃ + Σcᵇ) + d·o²` and `‖a-b‖² ≈ s²·Σ(cᵃ-cᵇ)²`, so the
//! walk uses the integer kernels (`vpmaddubsw`-class instructions through
//! simsimd) on a quarter of the bytes. The range is trained on the 0.05 % and
//! 99.95 % quantiles so rare outliers do not waste resolution. Results are then
//! rescored with the `f32` vectors.
//!
//! ## File `sq8.bin` ([`naksha_storage::section`] file, magic `NKSQ8\0\0\0`, user value = dim)
//!
//! | section | type  | content                         |
//! |---------|-------|---------------------------------|
//! | 0       | `f32` | `[offset, scale]`               |
//! | 1       | `i8`  | codes, `n × dim`                |
//! | 2       | `f32` | per-vector code sum `Σc`        |

use std::path::Path;
use std::sync::Arc;

use naksha_storage::section::{self, SectionFile};

use crate::distance;
use crate::hnsw::Scorer;
use crate::metric::Metric;
use crate::stored::Stored;
use crate::{Error, Result};

/// File magic of an SQ8 file.
pub const MAGIC: [u8; 8] = *b"NKSQ8\0\0\0";

/// Section of an sq8 file: `f32` × 2, the affine map's offset and scale.
const PARAMS: usize = 0;
/// Section: `i8` codes, `dim` per vector.
const CODES: usize = 1;
/// Section: `f32` per-vector code sums.
const SUMS: usize = 2;

/// Quantized codes of one segment.
#[derive(Debug, Clone)]
pub struct Sq8 {
    dim: usize,
    offset: f32,
    scale: f32,
    codes: Stored<i8>,
    sums: Stored<f32>,
}

/// Train the affine map on `vectors` (`n × dim`): returns `(offset, scale)`.
pub fn train(vectors: &[f32]) -> (f32, f32) {
    if vectors.is_empty() {
        return (0.0, 1.0);
    }
    let stride = (vectors.len() / 200_000).max(1);
    let mut sample: Vec<f32> = vectors.iter().step_by(stride).copied().collect();
    sample.sort_unstable_by(f32::total_cmp);
    let q = |p: f64| sample[((sample.len() - 1) as f64 * p).round() as usize];
    let (lo, hi) = (q(0.0005), q(0.9995));
    let scale = ((hi - lo) / 254.0).max(f32::MIN_POSITIVE * 1e3);
    ((hi + lo) / 2.0, scale)
}

impl Sq8 {
    /// Quantize `vectors` (`n × dim`) with a freshly trained map.
    pub fn encode(vectors: &[f32], dim: usize) -> Self {
        let (offset, scale) = train(vectors);
        let mut codes = Vec::with_capacity(vectors.len());
        let mut sums = Vec::with_capacity(vectors.len() / dim.max(1));
        for v in vectors.chunks_exact(dim.max(1)) {
            let start = codes.len();
            codes.extend(v.iter().map(|&x| quantize_one(x, offset, scale)));
            sums.push(codes[start..].iter().map(|&c| c as i32).sum::<i32>() as f32);
        }
        Self { dim, offset, scale, codes: Stored::owned(codes), sums: Stored::owned(sums) }
    }

    /// Write to `path` (fsynced).
    pub fn write(&self, path: &Path) -> Result<()> {
        section::write(
            path,
            MAGIC,
            self.dim as u64,
            &[
                bytemuck::cast_slice(&[self.offset, self.scale]),
                bytemuck::cast_slice(self.codes.as_slice()),
                bytemuck::cast_slice(self.sums.as_slice()),
            ],
        )?;
        Ok(())
    }

    /// Map `path`, expecting `n` vectors of `dim`.
    pub fn open(path: &Path, dim: usize, n: usize) -> Result<Self> {
        let file = Arc::new(SectionFile::open(path, MAGIC)?);
        let corrupt = |reason: &str| Error::CorruptSegment { path: path.to_owned(), reason: reason.to_owned() };
        let params = file.slice::<f32>(PARAMS)?;
        let (offset, scale) = match params {
            [o, s] if o.is_finite() && s.is_finite() && *s > 0.0 => (*o, *s),
            _ => return Err(corrupt("bad quantization parameters")),
        };
        let sq = Self { dim, offset, scale, codes: Stored::mapped(&file, CODES)?, sums: Stored::mapped(&file, SUMS)? };
        if file.user() as usize != dim || sq.codes.as_slice().len() != n * dim || sq.sums.as_slice().len() != n {
            return Err(corrupt("code count does not match the segment"));
        }
        Ok(sq)
    }

    /// Quantize a prepared query.
    pub fn quantize(&self, v: &[f32]) -> (Vec<i8>, f32) {
        let codes: Vec<i8> = v.iter().map(|&x| quantize_one(x, self.offset, self.scale)).collect();
        let sum = codes.iter().map(|&c| c as i32).sum::<i32>() as f32;
        (codes, sum)
    }

    /// Bytes of code data.
    pub fn data_bytes(&self) -> usize {
        self.codes.data_bytes() + self.sums.data_bytes()
    }

    /// A scorer for `query` (prepared) over these codes.
    pub fn scorer(&self, query: &[f32], metric: Metric) -> Sq8Scorer<'_> {
        let (q, qsum) = self.quantize(query);
        Sq8Scorer {
            codes: self.codes.as_slice(),
            sums: self.sums.as_slice(),
            dim: self.dim,
            q,
            qsum,
            metric,
            s2: self.scale * self.scale,
            so: self.scale * self.offset,
            doo: self.dim as f32 * self.offset * self.offset,
        }
    }
}

#[inline]
fn quantize_one(x: f32, offset: f32, scale: f32) -> i8 {
    ((x - offset) / scale).round().clamp(-127.0, 127.0) as i8
}

/// Approximate distances from a quantized query to quantized vectors.
#[derive(Debug)]
pub struct Sq8Scorer<'a> {
    codes: &'a [i8],
    sums: &'a [f32],
    dim: usize,
    q: Vec<i8>,
    qsum: f32,
    metric: Metric,
    s2: f32,
    so: f32,
    doo: f32,
}

impl Scorer for Sq8Scorer<'_> {
    #[inline]
    fn distance(&self, node: u32) -> f32 {
        let at = node as usize * self.dim;
        let c = &self.codes[at..at + self.dim];
        match self.metric {
            Metric::L2 => self.s2 * distance::l2sq_i8(&self.q, c) as f32,
            Metric::Dot | Metric::Cosine => {
                let dot = self.s2 * distance::dot_i8(&self.q, c) as f32
                    + self.so * (self.qsum + self.sums[node as usize])
                    + self.doo;
                if self.metric == Metric::Dot {
                    -dot
                } else {
                    1.0 - dot
                }
            }
        }
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        let at = node as usize * self.dim;
        distance::prefetch(&self.codes[at..at + self.dim]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{clustered, prepare_all};

    #[test]
    fn approximate_distances_track_exact_ones() {
        let dim = 64;
        for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
            let mut v = clustered(500, dim, 5, 0.3, 9);
            prepare_all(&mut v, dim, metric);
            let sq = Sq8::encode(&v, dim);
            let q = &v[..dim];
            let scorer = sq.scorer(q, metric);
            let mut worst = 0f32;
            let mut spread = 0f32;
            for i in 0..500u32 {
                let exact = metric.distance(q, &v[i as usize * dim..][..dim]);
                worst = worst.max((scorer.distance(i) - exact).abs());
                spread = spread.max(exact.abs());
            }
            assert!(worst <= 0.05 * spread.max(1.0), "{metric:?}: error {worst} vs spread {spread}");
        }
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sq8.bin");
        let v = clustered(100, 8, 3, 0.3, 10);
        let sq = Sq8::encode(&v, 8);
        sq.write(&path).unwrap();
        let back = Sq8::open(&path, 8, 100).unwrap();
        assert_eq!(back.codes.as_slice(), sq.codes.as_slice());
        assert!(Sq8::open(&path, 8, 99).is_err());
    }
}
