//! Naksha's own CPU forward pass for BERT-family encoders.
//!
//! Why not Candle's `BertModel` on the CPU: it pads every batch to its longest
//! row, runs attention as one small matmul per (row, head) with a thread-pool
//! hand-off in each, allocates every intermediate tensor fresh (the kernel
//! zeroes those pages), and calls libm's scalar `erff`/`expf`. Profiled, only
//! ~46 % of its time was matrix arithmetic. This encoder:
//!
//! - packs a batch's sequences end to end with no padding: the projections and
//!   the feed-forward layers are each one matmul over all the batch's tokens, and
//!   attention runs per sequence over exactly its own tokens (no mask needed);
//! - fuses query, key and value into one matmul, and folds biases and residuals
//!   into the matmul's accumulator;
//! - multiplies the linear layers in 16-bit integers on AVX2 CPUs without
//!   AVX-512 ([`qgemm`], [`Precision::Int16`], the default: ~1.7× the f32 matmul
//!   rate on Zen 3), in f32 through `gemm` otherwise or when asked
//!   (`cpu-f32`); attention stays f32;
//! - reuses its buffers across batches (a small pool, one set per thread at work);
//! - evaluates GELU, softmax and layer norm with vectorisable kernels
//!   ([`kernels`]).
//!
//! Threading is the caller's choice per batch: [`Parallelism::None`] when whole
//! batches already run side by side (throughput), `Rayon` when one batch must use
//! every core (a single query).
//!
//! Candle still reads the weights (any float dtype) and runs the `cuda` path.

mod kernels;
mod qgemm;
mod weights;

use std::sync::Mutex;

use rayon::prelude::*;

pub(crate) use kernels::Parallelism;
use kernels::{Activation, View};
#[cfg(test)]
pub(crate) use qgemm::preferred as int16_preferred;
pub(crate) use weights::{load, Config, LoadError};

use crate::pooling::Pooling;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug)]
struct Shape {
    hidden: usize,
    heads: usize,
    eps: f32,
    act: Activation,
}

/// How the linear layers multiply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Precision {
    /// f32 throughout (`gemm`): the reference arithmetic.
    F32,
    /// 16-bit integer matmuls ([`qgemm`]) where the CPU has AVX2 (and not
    /// AVX-512), f32 elsewhere.
    Int16,
}

/// A linear layer's weights in the form its matmul reads.
enum Weights {
    /// `inp × out` row-major.
    F32(Vec<f32>),
    Int16(qgemm::Packed),
}

/// `y = x · w + b`.
struct Linear {
    w: Weights,
    b: Vec<f32>,
    inp: usize,
    out: usize,
}

impl Linear {
    /// A layer from `w` (`inp × out` row-major) and `b`, multiplying in
    /// `precision` where this CPU can.
    fn new(w: Vec<f32>, b: Vec<f32>, inp: usize, out: usize, precision: Precision) -> Self {
        let w = match precision {
            Precision::Int16 if qgemm::preferred() => Weights::Int16(qgemm::Packed::new(&w, inp, out)),
            _ => Weights::F32(w),
        };
        Self { w, b, inp, out }
    }

    /// `dst = x · w + b` over `rows` rows, or `dst += x · w + b` when
    /// `accumulate` (`dst` then holds the residual). `q` is scratch for the
    /// quantised `x`.
    fn forward(
        &self,
        x: &[f32],
        rows: usize,
        dst: &mut [f32],
        accumulate: bool,
        par: Parallelism,
        q: &mut qgemm::Quantized,
    ) {
        let dst = &mut dst[..rows * self.out];
        match &self.w {
            Weights::F32(w) => {
                for row in dst.chunks_exact_mut(self.out) {
                    if accumulate {
                        kernels::add(row, &self.b);
                    } else {
                        row.copy_from_slice(&self.b);
                    }
                }
                let x = View::rows(x, rows, self.inp, self.inp);
                kernels::gemm(dst, self.out, x, View::rows(w, self.inp, self.out, self.out), true, 1.0, par);
            }
            Weights::Int16(w) => {
                q.fill(x, rows, self.inp);
                qgemm::matmul(dst, self.out, q, w, qgemm::Base { bias: &self.b, accumulate }, par);
            }
        }
    }
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Query, key and value side by side: `hidden × 3·hidden`.
    qkv: Linear,
    out: Linear,
    ln1: Norm,
    up: Linear,
    down: Linear,
    ln2: Norm,
}

/// Buffers for one forward pass, kept for the next.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    inter: Vec<f32>,
    scores: Vec<f32>,
    quantized: qgemm::Quantized,
}

/// A BERT encoder's weights, ready for [`Encoder::encode`].
pub(crate) struct Encoder {
    shape: Shape,
    word: Vec<f32>,
    pos: Vec<f32>,
    type0: Vec<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    scratch: Mutex<Vec<Scratch>>,
}

impl Encoder {
    /// Whether the linear layers multiply in 16-bit integers (all layers are
    /// loaded in one precision).
    pub(crate) fn is_int16(&self) -> bool {
        self.layers.first().is_some_and(|l| matches!(l.qkv.w, Weights::Int16(_)))
    }

    /// Vocabulary size of the embedding table.
    pub(crate) fn vocab(&self) -> usize {
        self.word.len() / self.shape.hidden
    }

    /// Encodes `seqs` (token ids with their special tokens) and pools each into
    /// one vector, normalised to unit length when `normalize`.
    pub(crate) fn encode(
        &self,
        seqs: &[&[u32]],
        pooling: Pooling,
        normalize: bool,
        par: Parallelism,
    ) -> Result<Vec<Vec<f32>>> {
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        let out = self.encode_with(seqs, pooling, normalize, par, &mut scratch);
        self.scratch.lock().unwrap_or_else(|e| e.into_inner()).push(scratch);
        out
    }

    fn encode_with(
        &self,
        seqs: &[&[u32]],
        pooling: Pooling,
        normalize: bool,
        par: Parallelism,
        s: &mut Scratch,
    ) -> Result<Vec<Vec<f32>>> {
        let Shape { hidden: h, eps, act, .. } = self.shape;
        let inter = self.layers.first().map_or(0, |l| l.up.out);
        let tokens: usize = seqs.iter().map(|q| q.len()).sum();
        for (buf, len) in [(&mut s.x, h), (&mut s.qkv, 3 * h), (&mut s.ctx, h), (&mut s.inter, inter)] {
            buf.resize(tokens * len, 0.0);
        }
        self.embed_tokens(seqs, &mut s.x)?;
        for_rows(&mut s.x, h, par, |rows| kernels::layer_norm(rows, &self.emb_norm.gamma, &self.emb_norm.beta, eps));
        for layer in &self.layers {
            layer.qkv.forward(&s.x, tokens, &mut s.qkv, false, par, &mut s.quantized);
            self.attention(&s.qkv, &mut s.ctx, seqs, &mut s.scores, par);
            // The residual is the accumulator: x = LN(x + ctx · Wo + bo).
            layer.out.forward(&s.ctx, tokens, &mut s.x, true, par, &mut s.quantized);
            for_rows(&mut s.x, h, par, |rows| kernels::layer_norm(rows, &layer.ln1.gamma, &layer.ln1.beta, eps));
            layer.up.forward(&s.x, tokens, &mut s.inter, false, par, &mut s.quantized);
            for_rows(&mut s.inter, layer.up.out, par, |rows| kernels::activate(rows, act));
            layer.down.forward(&s.inter, tokens, &mut s.x, true, par, &mut s.quantized);
            for_rows(&mut s.x, h, par, |rows| kernels::layer_norm(rows, &layer.ln2.gamma, &layer.ln2.beta, eps));
        }
        let mut start = 0;
        Ok(seqs
            .iter()
            .map(|q| {
                let rows = &s.x[start * h..(start + q.len()) * h];
                start += q.len();
                let mut v = pool(rows, h, pooling);
                if normalize {
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect())
    }

    /// Word + position + token-type-0 embeddings of every token, packed.
    fn embed_tokens(&self, seqs: &[&[u32]], x: &mut [f32]) -> Result<()> {
        let h = self.shape.hidden;
        let mut rows = x.chunks_exact_mut(h);
        for seq in seqs {
            for (p, &id) in seq.iter().enumerate() {
                let id = id as usize;
                let word = self.word.get(id * h..(id + 1) * h).ok_or_else(|| {
                    Error::Tokenizer(format!("token id {id} is outside the model's vocabulary of {}", self.vocab()))
                })?;
                let pos = self.pos.get(p * h..(p + 1) * h).ok_or_else(|| {
                    Error::InvalidArgument(format!("{} tokens exceed the model's position table", seq.len()))
                })?;
                let row = rows.next().expect("x holds one row per token");
                for (((r, w), t), p) in row.iter_mut().zip(word).zip(&self.type0).zip(pos) {
                    *r = w + t + p;
                }
            }
        }
        Ok(())
    }

    /// Multi-head self-attention of each sequence over its own tokens.
    fn attention(&self, qkv: &[f32], ctx: &mut [f32], seqs: &[&[u32]], scores: &mut Vec<f32>, par: Parallelism) {
        let h = self.shape.hidden;
        match par {
            Parallelism::None => {
                let mut start = 0;
                for q in seqs {
                    let (a, b) = (start, start + q.len());
                    self.attend(&qkv[a * 3 * h..b * 3 * h], &mut ctx[a * h..b * h], q.len(), scores);
                    start = b;
                }
            }
            _ => {
                let mut parts = Vec::with_capacity(seqs.len());
                let (mut rest, mut start) = (ctx, 0);
                for q in seqs {
                    let (part, tail) = rest.split_at_mut(q.len() * h);
                    parts.push((start, q.len(), part));
                    (rest, start) = (tail, start + q.len());
                }
                parts.into_par_iter().for_each_init(Vec::new, |scores, (start, len, part)| {
                    self.attend(&qkv[start * 3 * h..(start + len) * 3 * h], part, len, scores)
                });
            }
        }
    }

    /// Attention for one sequence: `qkv` is its `len × 3·hidden` projections,
    /// `ctx` receives its `len × hidden` output.
    fn attend(&self, qkv: &[f32], ctx: &mut [f32], len: usize, scores: &mut Vec<f32>) {
        let Shape { hidden: h, heads, .. } = self.shape;
        let d = h / heads;
        let scale = 1.0 / (d as f32).sqrt();
        scores.resize(len * len, 0.0);
        let head_view = |offset: usize| View { data: &qkv[offset..], rows: len, cols: d, rs: 3 * h, cs: 1 };
        for head in 0..heads {
            let (q, k, v) = (head_view(head * d), head_view(h + head * d), head_view(2 * h + head * d));
            kernels::gemm(scores, len, q, k.t(), false, scale, Parallelism::None);
            kernels::softmax_rows(scores, len);
            let probs = View::rows(scores, len, len, len);
            kernels::gemm(&mut ctx[head * d..], h, probs, v, false, 1.0, Parallelism::None);
        }
    }
}

/// Runs `f` over whole rows of `buf`, split across threads when `par` asks.
fn for_rows(buf: &mut [f32], width: usize, par: Parallelism, f: impl Fn(&mut [f32]) + Sync + Send) {
    match par {
        Parallelism::None => f(buf),
        _ => buf.par_chunks_mut(width * 64).for_each(f),
    }
}

/// One sentence vector from a sequence's `len × width` token vectors.
fn pool(rows: &[f32], width: usize, pooling: Pooling) -> Vec<f32> {
    let mut v = vec![0f32; width];
    let mut tokens = rows.chunks_exact(width);
    match pooling {
        Pooling::Cls => {
            if let Some(first) = tokens.next() {
                v.copy_from_slice(first);
            }
        }
        Pooling::Mean => {
            let n = tokens.len().max(1) as f32;
            tokens.for_each(|t| kernels::add(&mut v, t));
            v.iter_mut().for_each(|x| *x /= n);
        }
        Pooling::Max => {
            if let Some(first) = tokens.next() {
                v.copy_from_slice(first);
                tokens.for_each(|t| v.iter_mut().zip(t).for_each(|(m, x)| *m = m.max(*x)));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_modes() {
        let rows = [1f32, 2., 3., 4., 5., -6.];
        assert_eq!(pool(&rows, 2, Pooling::Mean), vec![3., 0.]);
        assert_eq!(pool(&rows, 2, Pooling::Cls), vec![1., 2.]);
        assert_eq!(pool(&rows, 2, Pooling::Max), vec![5., 4.]);
        assert_eq!(pool(&[], 2, Pooling::Mean), vec![0., 0.]);
    }
}
