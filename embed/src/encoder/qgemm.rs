//! 16-bit integer matrix products for the encoder's linear layers.
//!
//! Why: on AVX2 CPUs without AVX-512 (Zen 2/3, most desktops and laptops) the
//! f32 product already runs near the FMA peak, 16 multiply-adds per cycle per
//! core. `vpmaddwd` multiplies sixteen i16 pairs per instruction (and adds
//! neighbouring products), so the same core does about twice as many
//! multiply-adds in 16-bit integers. The linear layers are ~96 % of a BERT
//! forward pass's arithmetic.
//!
//! Numerics: weights are quantised per output column once, activations per row
//! each call, both symmetric to ±[`QMAX`] (12 bits). Integer products are exact
//! and are summed in i32 over blocks of at most [`KC`] inputs, so a sum never
//! overflows (`KC · QMAX² < 2³¹`); each block's sums are scaled to f32 and added
//! to the destination. The only error is each input's rounding to 1/4094 of its
//! row's (or column's) largest magnitude: the tests bound it against f32, and
//! the model's exactness test holds the whole encoder to sentence-transformers.
//!
//! Packed weight layout ([`Packed`]): columns in panels of [`NR`]; within a
//! panel, for each pair of inputs `(2t, 2t + 1)`, the panel's columns with
//! their two weights side by side:
//! `data[((panel · kp / 2 + t) · NR + c) · 2 + e] = q(w[2t + e][panel · NR + c])`,
//! zero past the last input or column, where `kp` is the input count rounded
//! up to even. Quantised activations ([`Quantized`]) are row-major `rows × kp`.
//!
//! The AVX2 microkernel (`avx2::tile`) is this crate's only hand-written SIMD;
//! [`tile_reference`] is the scalar definition it is tested against (and what
//! runs without AVX2). The encoder uses this module where [`preferred`] says
//! so and f32 `gemm` elsewhere.

use rayon::prelude::*;

use super::kernels::Parallelism;

/// Largest quantised magnitude (12-bit symmetric).
pub(crate) const QMAX: f32 = 2047.0;
/// Columns per weight panel: two AVX2 registers of i32 sums.
const NR: usize = 16;
/// Rows per microkernel tile: 6 × 2 accumulators fill 12 of the 16 registers.
const MR: usize = 6;
/// Inputs summed in i32 before the sums go to f32 (even; `KC · QMAX² < 2³¹`).
const KC: usize = 512;
/// Rows per cache block: their quantised inputs stay in L2 while every panel
/// passes over them.
const MC: usize = 48;

const _: () = assert!((KC as f64) * (QMAX as f64) * (QMAX as f64) < i32::MAX as f64 && KC.is_multiple_of(2));

/// Whether the encoder should multiply in 16-bit integers on this CPU: it has
/// AVX2 and not AVX-512. With AVX-512, f32 `gemm` already runs 16-lane FMAs,
/// as many multiply-adds per cycle as this AVX2 kernel (an AVX-512 integer
/// kernel would be the next step there). Detected once, cached by std.
pub(crate) fn preferred() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2() && !std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// A `k × n` weight matrix quantised per column and packed in panels.
#[derive(Debug)]
pub(crate) struct Packed {
    k: usize,
    n: usize,
    /// Per column: the f32 value of one quantisation step.
    scale: Vec<f32>,
    data: Vec<i16>,
}

impl Packed {
    /// Quantises and packs `w`, a `k × n` row-major matrix.
    pub(crate) fn new(w: &[f32], k: usize, n: usize) -> Self {
        assert!(w.len() == k * n && n > 0, "weights must be k × n with n > 0");
        let kp = k + k % 2;
        let panels = n.div_ceil(NR);
        let mut scale = vec![0f32; n];
        for row in w.chunks_exact(n) {
            for (s, &x) in scale.iter_mut().zip(row) {
                *s = s.max(x.abs());
            }
        }
        let inv: Vec<f32> = scale.iter().map(|&m| if m > 0.0 { QMAX / m } else { 0.0 }).collect();
        scale.iter_mut().for_each(|s| *s /= QMAX);
        let mut data = vec![0i16; panels * kp * NR];
        for (i, row) in w.chunks_exact(n).enumerate() {
            let (t, e) = (i / 2, i % 2);
            for (j, (&x, &inv)) in row.iter().zip(&inv).enumerate() {
                let (panel, c) = (j / NR, j % NR);
                data[((panel * kp / 2 + t) * NR + c) * 2 + e] = quantize(x, inv);
            }
        }
        Self { k, n, scale, data }
    }

    fn kp(&self) -> usize {
        self.k + self.k % 2
    }

    /// The packed weights of panel `p`: `kp / 2` pairs of `NR × 2` values.
    fn panel(&self, p: usize) -> &[i16] {
        let len = self.kp() * NR;
        &self.data[p * len..(p + 1) * len]
    }
}

/// Activations quantised per row (reused across calls as scratch).
#[derive(Debug, Default)]
pub(crate) struct Quantized {
    rows: usize,
    kp: usize,
    scale: Vec<f32>,
    data: Vec<i16>,
}

impl Quantized {
    /// Quantises the `rows × k` row-major `x` into `self`.
    pub(crate) fn fill(&mut self, x: &[f32], rows: usize, k: usize) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU has AVX2 (checked just now).
            return unsafe { avx2::fill(self, x, rows, k) };
        }
        self.fill_with(x, rows, k);
    }

    #[inline(always)]
    fn fill_with(&mut self, x: &[f32], rows: usize, k: usize) {
        let kp = k + k % 2;
        (self.rows, self.kp) = (rows, kp);
        self.scale.resize(rows, 0.0);
        self.data.resize(rows * kp, 0);
        if k == 0 {
            self.scale.fill(0.0);
            return;
        }
        for ((src, dst), s) in x[..rows * k].chunks_exact(k).zip(self.data.chunks_exact_mut(kp)).zip(&mut self.scale) {
            let max = max_abs(src);
            let inv = if max > 0.0 { QMAX / max } else { 0.0 };
            *s = max / QMAX;
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = quantize(x, inv);
            }
            dst[k..].fill(0);
        }
    }
}

/// The largest `|x|` (0 for an empty slice; NaN is ignored), in
/// [`LANES`] partial maxima so it vectorises.
#[inline(always)]
fn max_abs(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let mut max = chunks.remainder().iter().fold(0f32, |m, x| if x.abs() > m { x.abs() } else { m });
    for c in chunks {
        for (m, x) in acc.iter_mut().zip(c) {
            *m = if x.abs() > *m { x.abs() } else { *m };
        }
    }
    for m in acc {
        max = if m > max { m } else { max };
    }
    max
}

const LANES: usize = 8;

/// `x · inv` rounded to the nearest integer (ties to even), clamped to ±QMAX.
#[inline(always)]
fn quantize(x: f32, inv: f32) -> i16 {
    // Adding 1.5 · 2^23 rounds to an integer held in the low mantissa bits
    // (exact for |x · inv| < 2^22; here it is at most QMAX): plain float and
    // integer arithmetic, so the loops vectorise without SSE4.1's `roundps`.
    const MAGIC: f32 = 12_582_912.0;
    let bits = (x * inv + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32;
    // The clamp only matters for non-finite input (an overflowed activation):
    // it keeps every value in range, so the i32 sums cannot overflow.
    bits.clamp(-(QMAX as i32), QMAX as i32) as i16
}

/// What the product is added to: `dst = [dst +] bias + a · w`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Base<'a> {
    /// One value per output column.
    pub bias: &'a [f32],
    /// Keep `dst`'s values (a residual) and add to them.
    pub accumulate: bool,
}

/// `dst[i][j] = [dst[i][j] +] bias[j] + Σ_k a[i][k] · w[k][j]` in 16-bit
/// integers (see the module docs), `dst` row-major with row stride `ld`. The
/// bias and the residual are added while each tile's sums go to `dst`, so
/// `dst` is read and written once per [`KC`] inputs and never swept on its own.
///
/// Panics when the shapes disagree: callers size the buffers from the same
/// shapes, so that is a bug, never bad input.
pub(crate) fn matmul(dst: &mut [f32], ld: usize, a: &Quantized, w: &Packed, base: Base<'_>, par: Parallelism) {
    assert_eq!(a.kp, w.kp(), "qgemm: inner dimensions differ");
    assert_eq!(base.bias.len(), w.n, "qgemm: one bias per output column");
    assert!(ld >= w.n && dst.len() >= a.rows.saturating_sub(1) * ld + w.n, "qgemm: destination too small");
    let rows = a.rows;
    if a.kp == 0 {
        // No inputs: the product is zero and only the base remains.
        for row in dst.chunks_mut(ld).take(rows) {
            for (d, b) in row.iter_mut().zip(base.bias) {
                *d = if base.accumulate { *d + b } else { *b };
            }
        }
        return;
    }
    let kernel = Kernel::detect();
    let ops = Operands { a, w, base, ld };
    let threads = match par {
        Parallelism::Rayon(n) if rows > MR => n.max(1).min(rows.div_ceil(MR)),
        _ => 1,
    };
    if threads == 1 {
        block(dst, ops, 0, rows, kernel);
        return;
    }
    let per = rows.div_ceil(threads).div_ceil(MR) * MR;
    let len = (rows * ld).min(dst.len());
    dst[..len].par_chunks_mut(per * ld).enumerate().for_each(|(i, part)| {
        let first = i * per;
        block(part, ops, first, per.min(rows - first), kernel);
    });
}

/// One product's operands, shared by the threads that compute its rows.
#[derive(Clone, Copy)]
struct Operands<'a> {
    a: &'a Quantized,
    w: &'a Packed,
    base: Base<'a>,
    /// `dst`'s row stride.
    ld: usize,
}

/// Rows `first..first + rows` of the product into `dst` (which starts at row `first`).
fn block(dst: &mut [f32], ops: Operands<'_>, first: usize, rows: usize, kernel: Kernel) {
    match kernel {
        Kernel::Reference => block_with(dst, ops, first, rows, tile_reference),
        // SAFETY: `Kernel::Avx2` is only detected on CPUs with AVX2.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { avx2::block(dst, ops, first, rows) },
    }
}

/// [`block`] with `tile` as the microkernel: cache blocks of [`MC`] rows, then
/// panels, then [`KC`]-input blocks, then tiles of [`MR`] rows; each tile's
/// bounds are checked ([`check_tile`]) before `tile` runs, and its i32 sums are
/// scaled and added to `dst` (to `base` for the first block).
#[inline(always)]
fn block_with(
    dst: &mut [f32],
    Operands { a, w, base, ld }: Operands<'_>,
    first: usize,
    rows: usize,
    mut tile: impl FnMut(usize, &[i16], usize, &[i16], usize, &mut [[i32; NR]; MR]),
) {
    let (kp, pairs) = (a.kp, a.kp / 2);
    let mut sums = [[0i32; NR]; MR];
    for i0 in (0..rows).step_by(MC) {
        let ib = MC.min(rows - i0);
        for p in 0..w.n.div_ceil(NR) {
            let panel = w.panel(p);
            let (j0, nc) = (p * NR, NR.min(w.n - p * NR));
            let (col_scale, bias) = (&w.scale[j0..j0 + nc], &base.bias[j0..j0 + nc]);
            for t0 in (0..pairs).step_by(KC / 2) {
                let np = (KC / 2).min(pairs - t0);
                let b = &panel[t0 * NR * 2..(t0 + np) * NR * 2];
                for r0 in (i0..i0 + ib).step_by(MR) {
                    let r = MR.min(i0 + ib - r0);
                    let row = first + r0;
                    let a_tile = &a.data[row * kp + 2 * t0..];
                    check_tile(r, a_tile, kp, b, np);
                    tile(r, a_tile, kp, b, np, &mut sums);
                    for (rr, s) in sums[..r].iter().enumerate() {
                        let scale = a.scale[row + rr];
                        let out = &mut dst[(r0 + rr) * ld + j0..][..nc];
                        // Loops, not `for_each`: closures outlined from this
                        // function would lose its AVX2 build.
                        let sums = s.iter().zip(col_scale).map(|(&v, &cs)| v as f32 * scale * cs);
                        if t0 > 0 {
                            for (d, x) in out.iter_mut().zip(sums) {
                                *d += x;
                            }
                        } else if base.accumulate {
                            for ((d, x), b) in out.iter_mut().zip(sums).zip(bias) {
                                *d += b + x;
                            }
                        } else {
                            for ((d, x), b) in out.iter_mut().zip(sums).zip(bias) {
                                *d = b + x;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The bounds every tile kernel relies on (see [`Kernel::tile`]).
fn check_tile(rows: usize, a: &[i16], lda: usize, b: &[i16], pairs: usize) {
    assert!(rows <= MR && b.len() >= pairs * NR * 2, "qgemm: tile shape");
    assert!(rows == 0 || a.len() >= (rows - 1) * lda + 2 * pairs, "qgemm: tile rows out of bounds");
}

/// The tile kernel this CPU runs.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    Reference,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            return Kernel::Avx2;
        }
        Kernel::Reference
    }

    /// `sums[r][c] = Σ_{t < pairs} a[r·lda + 2t + e] · b[(t·NR + c)·2 + e]`
    /// (over `e ∈ {0, 1}`) for `r < rows`; rows from `rows` on are untouched.
    #[cfg(test)]
    fn tile(self, rows: usize, a: &[i16], lda: usize, b: &[i16], pairs: usize, sums: &mut [[i32; NR]; MR]) {
        check_tile(rows, a, lda, b, pairs);
        match self {
            Kernel::Reference => tile_reference(rows, a, lda, b, pairs, sums),
            // SAFETY: `Kernel::Avx2` is only detected on CPUs with AVX2.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2::tile_checked(rows, a, lda, b, pairs, sums) },
        }
    }
}

/// The scalar definition of a tile (see [`Kernel::tile`]).
fn tile_reference(rows: usize, a: &[i16], lda: usize, b: &[i16], pairs: usize, sums: &mut [[i32; NR]; MR]) {
    for (r, s) in sums[..rows].iter_mut().enumerate() {
        *s = [0; NR];
        for t in 0..pairs {
            let (a0, a1) = (a[r * lda + 2 * t] as i32, a[r * lda + 2 * t + 1] as i32);
            for (c, s) in s.iter_mut().enumerate() {
                *s += a0 * b[(t * NR + c) * 2] as i32 + a1 * b[(t * NR + c) * 2 + 1] as i32;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{block_with, Operands, Quantized, MR, NR};

    /// [`Quantized::fill`] compiled for AVX2 (8-lane vectors).
    #[target_feature(enable = "avx2")]
    pub(super) fn fill(q: &mut Quantized, x: &[f32], rows: usize, k: usize) {
        q.fill_with(x, rows, k)
    }

    /// [`super::block`] with the AVX2 tile, compiled for AVX2 throughout.
    #[target_feature(enable = "avx2")]
    pub(super) fn block(dst: &mut [f32], ops: Operands<'_>, first: usize, rows: usize) {
        block_with(dst, ops, first, rows, |r, a, lda, b, np, sums| {
            // SAFETY: this function runs only on CPUs with AVX2, and
            // `block_with` checked the tile's bounds just before this call.
            unsafe { tile_checked(r, a, lda, b, np, sums) }
        })
    }

    /// `tile::<rows>`.
    ///
    /// # Safety
    /// As [`tile`], for `R = rows`.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn tile_checked(
        rows: usize,
        a: &[i16],
        lda: usize,
        b: &[i16],
        pairs: usize,
        sums: &mut [[i32; NR]; MR],
    ) {
        // SAFETY (each arm): the caller's contract for `R = rows`.
        unsafe {
            match rows {
                1 => tile::<1>(a, lda, b, pairs, sums),
                2 => tile::<2>(a, lda, b, pairs, sums),
                3 => tile::<3>(a, lda, b, pairs, sums),
                4 => tile::<4>(a, lda, b, pairs, sums),
                5 => tile::<5>(a, lda, b, pairs, sums),
                6 => tile::<6>(a, lda, b, pairs, sums),
                _ => {}
            }
        }
    }

    /// [`super::tile_reference`] for `R` rows with `vpmaddwd`: per pair of
    /// inputs, each row's two activations are broadcast and multiplied with
    /// the panel's 16 columns × 2 weights, accumulating 8 i32 sums per register.
    ///
    /// # Safety
    /// The CPU must have AVX2; `R ≤ MR`, `b.len() ≥ pairs · NR · 2` and
    /// `a.len() ≥ (R − 1) · lda + 2 · pairs` (the caller checks these with
    /// [`check_tile`]).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile<const R: usize>(a: &[i16], lda: usize, b: &[i16], pairs: usize, sums: &mut [[i32; NR]; MR]) {
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for t in 0..pairs {
            // SAFETY: `t < pairs`, so these 32 values lie inside `b`.
            let (b0, b1) = unsafe {
                let p = b.add(t * NR * 2);
                (_mm256_loadu_si256(p.cast()), _mm256_loadu_si256(p.add(NR).cast()))
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `r < R` and `2t + 1 < 2 · pairs`: inside `a`.
                let pair = unsafe { a.add(r * lda + 2 * t).cast::<i32>().read_unaligned() };
                let x = _mm256_set1_epi32(pair);
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(x, b0));
                acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(x, b1));
            }
        }
        for (s, acc) in sums.iter_mut().zip(&acc) {
            // SAFETY: `s` holds NR = 16 i32s, two registers' worth.
            unsafe {
                _mm256_storeu_si256(s.as_mut_ptr().cast(), acc[0]);
                _mm256_storeu_si256(s.as_mut_ptr().add(8).cast(), acc[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) with a few large outliers, like BERT's.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..len)
            .map(|i| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let x = (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                if i % 97 == 0 {
                    x * 8.0
                } else {
                    x
                }
            })
            .collect()
    }

    fn product(a: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        (0..m * n).map(|x| (0..k).map(|p| a[x / n * k + p] as f64 * w[p * n + x % n] as f64).sum()).collect()
    }

    #[test]
    fn kernels_agree_with_the_reference_exactly() {
        let (k, pairs) = (37, 19);
        let a: Vec<i16> = values(MR * k * 2, 1).iter().map(|x| (x * 256.0) as i16).collect();
        let b: Vec<i16> = values(pairs * NR * 2, 2).iter().map(|x| (x * 256.0) as i16).collect();
        for rows in 0..=MR {
            let mut want = [[7; NR]; MR];
            tile_reference(rows, &a, 2 * k, &b, pairs, &mut want);
            let mut got = [[7; NR]; MR];
            Kernel::detect().tile(rows, &a, 2 * k, &b, pairs, &mut got);
            assert_eq!(got[..rows], want[..rows], "{rows} rows");
            assert_eq!(got[rows..], [[7; NR]; MR][rows..], "rows past the tile untouched");
        }
    }

    #[test]
    fn products_stay_within_the_rounding_bound_for_every_shape() {
        // Odd k (padding), k over KC (several i32 blocks), n off the panel
        // width, rows off the tile and cache blocks; serial and threaded.
        for (m, k, n) in [(1, 3, 5), (13, 37, 17), (50, 1100, 40), (7, 384, 16)] {
            let (a, w) = (values(m * k, m as u64), values(k * n, n as u64));
            let want = product(&a, &w, m, k, n);
            // Each input is off by at most half its step: |error| ≤
            // ½·step_a·Σ|w| + ½·step_w·Σ|a| + ¼·step_a·step_w·k, plus f32 sums.
            let max_abs = |xs: &mut dyn Iterator<Item = f32>| xs.fold(0f64, |m, x| m.max(x.abs() as f64));
            let bound = |i: usize, j: usize| {
                let (row, col) = (&a[i * k..(i + 1) * k], (0..k).map(|p| w[p * n + j]));
                let step_a = max_abs(&mut row.iter().copied()) / QMAX as f64;
                let step_w = max_abs(&mut col.clone()) / QMAX as f64;
                let sum_a: f64 = row.iter().map(|x| x.abs() as f64).sum();
                let sum_w: f64 = col.clone().map(|x| x.abs() as f64).sum();
                let sum_aw: f64 = row.iter().zip(col).map(|(x, y)| (x * y).abs() as f64).sum();
                0.5 * step_a * sum_w + 0.5 * step_w * sum_a + 0.25 * step_a * step_w * k as f64 + 1e-5 * sum_aw
            };
            let packed = Packed::new(&w, k, n);
            let mut q = Quantized::default();
            q.fill(&a, m, k);
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25).collect();
            let pars = [Parallelism::None, Parallelism::Rayon(2), Parallelism::Rayon(8)];
            for (par, accumulate) in pars.into_iter().flat_map(|p| [(p, false), (p, true)]) {
                let ld = n + 2;
                // Without `accumulate` the old values (NaN here) must not leak in.
                let old = if accumulate { 1f32 } else { f32::NAN };
                let mut dst = vec![old; m * ld];
                dst.chunks_mut(ld).for_each(|r| r[n..].fill(1.0));
                matmul(&mut dst, ld, &q, &packed, Base { bias: &bias, accumulate }, par);
                let (mut err_sum, mut mag_sum) = (0f64, 0f64);
                for i in 0..m {
                    for j in 0..n {
                        let keep = if accumulate { 1.0 } else { 0.0 };
                        let err = (dst[i * ld + j] as f64 - keep - bias[j] as f64 - want[i * n + j]).abs();
                        assert!(err <= bound(i, j), "({m},{k},{n}) [{i},{j}]: error {err} over {}", bound(i, j));
                        (err_sum, mag_sum) = (err_sum + err, mag_sum + want[i * n + j].abs());
                    }
                    assert_eq!(&dst[i * ld + n..(i + 1) * ld], &[1.0, 1.0], "padding untouched");
                }
                // Typical errors are far inside the bound: rounding errors cancel.
                assert!(err_sum < 5e-3 * mag_sum, "({m},{k},{n}): mean relative error {}", err_sum / mag_sum);
            }
        }
    }

    #[test]
    fn zero_rows_and_columns_stay_zero() {
        let (m, k, n) = (3, 4, 3);
        let mut a = values(m * k, 9);
        a[k..2 * k].fill(0.0);
        let mut w = values(k * n, 10);
        w.iter_mut().skip(1).step_by(n).for_each(|x| *x = 0.0);
        let mut q = Quantized::default();
        q.fill(&a, m, k);
        let mut dst = vec![0f32; m * n];
        let base = Base { bias: &[0.0; 3], accumulate: false };
        matmul(&mut dst, n, &q, &Packed::new(&w, k, n), base, Parallelism::None);
        assert_eq!(&dst[n..2 * n], &[0.0; 3]);
        assert!((0..m).all(|i| dst[i * n + 1] == 0.0));
        // No inputs at all: only the base remains.
        q.fill(&[], 2, 0);
        let mut dst = vec![5f32; 2 * n];
        let base = Base { bias: &[1.0, 2.0, 3.0], accumulate: true };
        matmul(&mut dst, n, &q, &Packed::new(&[], 0, n), base, Parallelism::None);
        assert_eq!(dst, [6.0, 7.0, 8.0, 6.0, 7.0, 8.0]);
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn mismatched_shapes_panic() {
        let mut q = Quantized::default();
        q.fill(&[1.0; 8], 2, 4);
        let base = Base { bias: &[0.0; 3], accumulate: false };
        matmul(&mut [0.0; 6], 3, &q, &Packed::new(&[1.0; 18], 6, 3), base, Parallelism::None);
    }
}
