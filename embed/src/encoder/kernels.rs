//! The numeric kernels of the CPU encoder.
//!
//! - [`gemm`]: matrix products through the `gemm` crate (runtime-dispatched
//!   AVX2/FMA/AVX-512 microkernels). This is the crate's one `unsafe` call, behind
//!   a safe wrapper that checks every view's bounds and shape.
//! - Element-wise and row kernels ([`exp`], [`erf`], GELU, layer norm, softmax),
//!   written as plain branch-free Rust over slices so LLVM vectorises them: libm's
//!   `expf`/`erff` are scalar calls and were ~19 % of the time under Candle.
//!   Reductions keep [`LANES`] partial sums so they vectorise too (float addition
//!   is not reassociated otherwise). The `portable` module holds them; the public
//!   entry points run the same code compiled for AVX2 + FMA when the CPU has
//!   them (8 lanes instead of SSE2's 4), chosen at run time.
//!
//! Each kernel is tested against an f64 reference below, in both builds.

pub(crate) use ::gemm::Parallelism;

/// Partial sums kept by the reductions; one AVX register of f32.
const LANES: usize = 8;

/// A read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A dense row-major `rows × cols` matrix with row stride `rs`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        Self { data, rows, cols, rs, cs: 1 }
    }

    /// The transpose of this view (no copy).
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }

    fn in_bounds(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (rows × cols, row stride dst_rs) = [dst +] scale · a · b`.
///
/// Panics when a view is out of bounds or the shapes disagree: callers size
/// their buffers from the same shapes, so that is a bug, never bad input.
pub(crate) fn gemm(
    dst: &mut [f32],
    dst_rs: usize,
    a: View<'_>,
    b: View<'_>,
    accumulate: bool,
    scale: f32,
    par: Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions differ");
    assert!(a.in_bounds() && b.in_bounds(), "gemm: operand view out of bounds");
    let out = View::rows(dst, m, n, dst_rs);
    assert!(dst_rs >= n && out.in_bounds(), "gemm: destination view out of bounds or overlapping");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_rs).take(m).for_each(|r| r[..n].fill(0.0));
        }
        return;
    }
    let stride = |s: usize| s as isize;
    // SAFETY: every index the product touches, `(i, j)` for `i < rows` and
    // `j < cols` of each view, lies inside that view's slice (checked above);
    // `dst` rows are at least `n` apart, so no element is written twice, and
    // `dst` is borrowed mutably, so it cannot alias `a` or `b`. The kernel is
    // instantiated for f32, which `gemm` supports.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(dst_rs),
            accumulate,
            a.data.as_ptr(),
            stride(a.cs),
            stride(a.rs),
            b.data.as_ptr(),
            stride(b.cs),
            stride(b.rs),
            1.0,
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

/// `e^x` to about 2 ulp over the f32 range (Cephes' polynomial after a ln 2
/// range reduction); inputs below −87.3 give ~1e-38 rather than 0, above 88.3
/// saturate at e^88.3.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5 · 2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n, built in the exponent field (n ∈ [-126, 127] after the clamp).
    let bits = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23;
    e * f32::from_bits(bits)
}

/// The error function to within 5e-7 absolute (Abramowitz & Stegun 7.1.26,
/// 1.5e-7, plus f32 rounding): plenty for GELU, whose inputs are O(1).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4f32;
    p = p * t - 1.453_152;
    p = p * t + 1.421_413_7;
    p = p * t - 0.284_496_72;
    p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

/// The activations BERT-family configs name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activation {
    /// `gelu`: x · Φ(x) with the exact (erf) normal CDF.
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    /// `relu`.
    Relu,
}

/// The kernels as written; the public functions below pick the build.
mod portable {
    use super::{erf, exp, Activation, LANES};

    /// Applies `act` in place.
    #[inline(always)]
    pub(super) fn activate(xs: &mut [f32], act: Activation) {
        // Loops, not `for_each` (see `softmax_rows`).
        match act {
            Activation::Gelu => {
                for x in xs.iter_mut() {
                    *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
                }
            }
            Activation::GeluTanh => {
                for x in xs.iter_mut() {
                    let u = 0.797_884_6 * (*x + 0.044_715 * *x * *x * *x);
                    // tanh(u) = 1 − 2 / (e^{2u} + 1)
                    let tanh = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
                    *x = 0.5 * *x * (1.0 + tanh);
                }
            }
            Activation::Relu => {
                for x in xs.iter_mut() {
                    *x = x.max(0.0);
                }
            }
        }
    }

    /// Sum of `xs`, vectorised.
    #[inline(always)]
    pub(super) fn sum(xs: &[f32]) -> f32 {
        let mut acc = [0f32; LANES];
        let chunks = xs.chunks_exact(LANES);
        let tail: f32 = chunks.remainder().iter().sum();
        for c in chunks {
            for (a, x) in acc.iter_mut().zip(c) {
                *a += x;
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    /// Sum of `(x − mean)²`, vectorised.
    #[inline(always)]
    fn sum_sq_dev(xs: &[f32], mean: f32) -> f32 {
        let mut acc = [0f32; LANES];
        let chunks = xs.chunks_exact(LANES);
        let tail: f32 = chunks.remainder().iter().map(|x| (x - mean) * (x - mean)).sum();
        for c in chunks {
            for (a, x) in acc.iter_mut().zip(c) {
                *a += (x - mean) * (x - mean);
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    /// Layer norm of each `gamma.len()`-wide row of `xs`, in place.
    #[inline(always)]
    pub(super) fn layer_norm(xs: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let width = gamma.len();
        for row in xs.chunks_exact_mut(width) {
            let mean = sum(row) / width as f32;
            let inv = 1.0 / (sum_sq_dev(row, mean) / width as f32 + eps).sqrt();
            for ((x, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *x = (*x - mean) * inv * g + b;
            }
        }
    }

    /// Softmax of `row` in place.
    #[inline(always)]
    pub(super) fn softmax(row: &mut [f32]) {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let chunks = row.chunks_exact(LANES);
        let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        for c in chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a = a.max(x);
            }
        }
        let max = acc.iter().fold(tail, |m, &x| m.max(x));
        for x in row.iter_mut() {
            *x = exp(*x - max);
        }
        let inv = 1.0 / sum(row);
        for x in row.iter_mut() {
            *x *= inv;
        }
    }

    /// Softmax of each `width`-wide row of `xs`, in place.
    #[inline(always)]
    pub(super) fn softmax_rows(xs: &mut [f32], width: usize) {
        // A loop, not `for_each`: an outlined iterator adaptor would be
        // compiled without the caller's AVX2 (measured: 5 % of the time in SSE).
        for row in xs.chunks_exact_mut(width) {
            softmax(row);
        }
    }
}

/// Whether this CPU runs the AVX2 + FMA build (detected once, cached by std).
fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `pub(crate) fn $name`, which runs `portable::$name` compiled with
/// AVX2 + FMA enabled when the CPU has them, and as is otherwise.
macro_rules! widest {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn wide($($arg: $ty),*) {
                    portable::$name($($arg),*)
                }
                if avx2_fma() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just now).
                    return unsafe { wide($($arg),*) };
                }
            }
            portable::$name($($arg),*)
        }
    };
}

widest!(
    /// Applies `act` in place.
    activate(xs: &mut [f32], act: Activation)
);
widest!(
    /// Layer norm of each `gamma.len()`-wide row of `xs`, in place.
    layer_norm(xs: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32)
);
widest!(
    /// Softmax of each `width`-wide row of `xs`, in place.
    softmax_rows(xs: &mut [f32], width: usize)
);

/// `dst[i] += src[i]`.
pub(crate) fn add(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by Simpson's rule on 2/√π · e^(−t²) over [0, x]: error far below 1e-12.
    fn erf64(x: f64) -> f64 {
        let n = 2000;
        let h = x / n as f64;
        let f = |t: f64| (-t * t).exp();
        let inner: f64 = (1..n).map(|i| if i % 2 == 1 { 4.0 } else { 2.0 } * f(i as f64 * h)).sum();
        (f(0.0) + inner + f(x)) * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_is_accurate_over_the_range() {
        let mut worst = 0f64;
        for i in -87_000..88_000 {
            let x = i as f32 / 1000.0;
            let rel = ((exp(x) as f64) - (x as f64).exp()).abs() / (x as f64).exp();
            worst = worst.max(rel);
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert!(exp(-1000.0) < 1e-37 && exp(-1000.0) >= 0.0);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn erf_is_accurate() {
        let mut worst = 0f64;
        for i in -2500..2500 {
            let x = i as f32 / 500.0;
            worst = worst.max((erf(x) as f64 - erf64(x as f64)).abs());
        }
        assert!(worst < 5e-7, "absolute error {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(10.0) - 1.0).abs() < 1e-7 && (erf(-10.0) + 1.0).abs() < 1e-7);
    }

    #[test]
    fn activations_match_their_definitions() {
        let xs: Vec<f32> = (-600..600).map(|i| i as f32 / 100.0).collect();
        let builds: [fn(&mut [f32], Activation); 2] = [activate, portable::activate];
        for (build, act) in
            builds.iter().flat_map(|b| [Activation::Gelu, Activation::GeluTanh, Activation::Relu].map(|a| (b, a)))
        {
            let mut ys = xs.clone();
            build(&mut ys, act);
            for (&x, &y) in xs.iter().zip(&ys) {
                let x = x as f64;
                let want = match act {
                    Activation::Gelu => 0.5 * x * (1.0 + erf64(x / 2f64.sqrt())),
                    Activation::GeluTanh => {
                        0.5 * x * (1.0 + (0.797_884_560_802_865_4 * (x + 0.044_715 * x * x * x)).tanh())
                    }
                    Activation::Relu => x.max(0.0),
                };
                assert!((y as f64 - want).abs() < 2e-6 * (1.0 + x.abs()), "{act:?}({x}) = {y}, want {want}");
            }
        }
    }

    #[test]
    fn layer_norm_and_softmax_match_f64() {
        let width = 37; // not a multiple of LANES: the tails count
        let xs: Vec<f32> = (0..width * 3).map(|i| ((i * 7919) % 101) as f32 / 10.0 - 5.0).collect();
        let gamma: Vec<f32> = (0..width).map(|i| 0.5 + i as f32 / 50.0).collect();
        let beta: Vec<f32> = (0..width).map(|i| i as f32 / 100.0 - 0.2).collect();
        for build in [layer_norm, portable::layer_norm] {
            let mut ys = xs.clone();
            build(&mut ys, &gamma, &beta, 1e-12);
            check_layer_norm(&xs, &ys, &gamma, &beta);
        }
        let mut rows: Vec<f32> = (0..width * 2).map(|i| (i as f32 - 20.0) * 0.7).collect();
        check_softmax(&mut rows, width, softmax_rows);
        check_softmax(&mut rows, width, portable::softmax_rows);
    }

    fn check_layer_norm(xs: &[f32], ys: &[f32], gamma: &[f32], beta: &[f32]) {
        let width = gamma.len();
        for (row, out) in xs.chunks(width).zip(ys.chunks(width)) {
            let mean = row.iter().map(|&x| x as f64).sum::<f64>() / width as f64;
            let var = row.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / width as f64;
            for i in 0..width {
                let want = (row[i] as f64 - mean) / var.sqrt() * gamma[i] as f64 + beta[i] as f64;
                assert!((out[i] as f64 - want).abs() < 1e-5, "{} vs {want}", out[i]);
            }
        }
    }

    fn check_softmax(rows: &mut [f32], width: usize, build: fn(&mut [f32], usize)) {
        let orig = rows.to_vec();
        build(rows, width);
        for (out, row) in rows.chunks(width).zip(orig.chunks(width)) {
            let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
            for (y, x) in out.iter().zip(row) {
                assert!((*y as f64 - (*x as f64).exp() / z).abs() < 1e-6);
            }
        }
        rows.copy_from_slice(&orig);
    }

    #[test]
    fn gemm_matches_a_naive_product_for_every_layout() {
        let (m, k, n) = (13, 9, 11);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 - 8.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.5 - 3.0).collect();
        let naive = |i: usize, j: usize| (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum::<f64>();
        // b given transposed: bt is n × k row-major.
        let bt: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
        for par in [Parallelism::None, Parallelism::Rayon(2)] {
            for transposed in [false, true] {
                let bv = if transposed { View::rows(&bt, n, k, k).t() } else { View::rows(&b, k, n, n) };
                let dst_rs = n + 3;
                let mut dst = vec![1f32; m * dst_rs];
                gemm(&mut dst, dst_rs, View::rows(&a, m, k, k), bv, true, 0.5, par);
                for i in 0..m {
                    for j in 0..n {
                        assert_eq!(dst[i * dst_rs + j] as f64, 1.0 + 0.5 * naive(i, j));
                    }
                    assert_eq!(&dst[i * dst_rs + n..(i + 1) * dst_rs], &[1.0; 3], "padding untouched");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn gemm_rejects_a_short_buffer() {
        let a = [1f32; 6];
        let mut dst = [0f32; 3];
        gemm(&mut dst, 2, View::rows(&a, 2, 3, 3), View::rows(&a, 3, 2, 2), false, 1.0, Parallelism::None);
    }
}
