//! Distance kernels on `f32` and `i8` slices.
//!
//! The public functions are safe and pick a kernel once per process: the
//! `simsimd` kernels (which dispatch at run time to AVX2, AVX-512, NEON or SVE
//! as the CPU allows), or the plain-Rust [`scalar`] reference when simsimd
//! reports no SIMD support. Every kernel is tested against an `f64` reference in
//! `tests.rs`. Before changing a kernel, run `cargo bench -p naksha-index --bench distance`.
//!
//! | file        | responsibility                                          |
//! |-------------|---------------------------------------------------------|
//! | `mod.rs`    | safe entry points and the one-time kernel choice        |
//! | `scalar.rs` | reference kernels, written so LLVM can auto-vectorise   |
//! | `simd.rs`   | simsimd wrappers and the cache prefetch hint (the only `unsafe`) |
//! | `tests.rs`  | one suite run against every kernel set                  |

pub mod scalar;
mod simd;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

pub use simd::prefetch;

/// A set of kernels, so tests and benches can run each side by side.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// Name for reports: `scalar`, or `simsimd-<isa>`.
    pub name: &'static str,
    /// Dot product of `f32` slices.
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// Squared Euclidean distance of `f32` slices.
    pub l2sq: fn(&[f32], &[f32]) -> f32,
    /// Dot product of `i8` slices.
    pub dot_i8: fn(&[i8], &[i8]) -> i32,
    /// Squared Euclidean distance of `i8` slices.
    pub l2sq_i8: fn(&[i8], &[i8]) -> i32,
}

/// The scalar reference kernels.
pub const SCALAR: Kernels =
    Kernels { name: "scalar", dot: scalar::dot, l2sq: scalar::l2sq, dot_i8: scalar::dot_i8, l2sq_i8: scalar::l2sq_i8 };

/// Every kernel set usable on this CPU (scalar first).
pub fn available() -> Vec<Kernels> {
    let mut v = vec![SCALAR];
    if let Some(k) = simd::kernels() {
        v.push(k);
    }
    v
}

/// The kernel set used by [`dot`], [`l2sq`], [`dot_i8`] and [`l2sq_i8`].
pub fn active() -> &'static Kernels {
    static ACTIVE: OnceLock<Kernels> = OnceLock::new();
    ACTIVE.get_or_init(|| simd::kernels().unwrap_or(SCALAR))
}

/// Dot product. Slices must have equal length.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (active().dot)(a, b)
}

/// Squared Euclidean distance. Slices must have equal length.
#[inline]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    (active().l2sq)(a, b)
}

/// Dot product of `i8` codes.
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    (active().dot_i8)(a, b)
}

/// Squared Euclidean distance of `i8` codes.
#[inline]
pub fn l2sq_i8(a: &[i8], b: &[i8]) -> i32 {
    (active().l2sq_i8)(a, b)
}
