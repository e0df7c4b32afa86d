//! One suite, run against every kernel set available on this CPU.

use proptest::prelude::*;

use super::*;

fn dot_ref(a: &[f32], b: &[f32]) -> (f64, f64) {
    let exact = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let mag = a.iter().zip(b).map(|(&x, &y)| (x as f64 * y as f64).abs()).sum();
    (exact, mag)
}

fn l2_ref(a: &[f32], b: &[f32]) -> (f64, f64) {
    let exact = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    let mag = a.iter().zip(b).map(|(&x, &y)| (x.abs() as f64 + y.abs() as f64).powi(2)).sum();
    (exact, mag)
}

/// Error bound of a length-`n` f32 summation: (n + 2)·ε·Σ|terms| (Higham's γ_n).
fn max_error(n: usize, magnitude: f64) -> f64 {
    (n as f64 + 2.0) * f32::EPSILON as f64 * magnitude + 1e-30
}

fn check(kernels: &Kernels, a: &[f32], b: &[f32]) -> Result<(), TestCaseError> {
    let (d, mag) = dot_ref(a, b);
    let got = (kernels.dot)(a, b) as f64;
    prop_assert!((got - d).abs() <= max_error(a.len(), mag), "{}: dot {got} vs {d}", kernels.name);
    let (l, mag) = l2_ref(a, b);
    let got = (kernels.l2sq)(a, b) as f64;
    prop_assert!((got - l).abs() <= max_error(a.len(), mag), "{}: l2sq {got} vs {l}", kernels.name);
    Ok(())
}

fn pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    prop_oneof![Just(0usize), Just(1), Just(7), Just(8), Just(9), Just(128), Just(384), 0usize..1100]
        .prop_flat_map(|n| (prop::collection::vec(-100f32..100.0, n), prop::collection::vec(-100f32..100.0, n)))
}

fn pair_i8() -> impl Strategy<Value = (Vec<i8>, Vec<i8>)> {
    (0usize..1100).prop_flat_map(|n| (prop::collection::vec(any::<i8>(), n), prop::collection::vec(any::<i8>(), n)))
}

proptest! {
    #[test]
    fn f32_kernels_match_f64_reference((a, b) in pair()) {
        for k in available() {
            check(&k, &a, &b)?;
        }
    }

    #[test]
    fn i8_kernels_are_exact((a, b) in pair_i8()) {
        for k in available() {
            prop_assert_eq!((k.dot_i8)(&a, &b), scalar::dot_i8(&a, &b), "{}", k.name);
            prop_assert_eq!((k.l2sq_i8)(&a, &b), scalar::l2sq_i8(&a, &b), "{}", k.name);
        }
    }
}

#[test]
fn extremes_of_i8_are_exact() {
    let a = vec![-128i8; 1024];
    let b = vec![127i8; 1024];
    for k in available() {
        assert_eq!((k.dot_i8)(&a, &a), 128 * 128 * 1024, "{}", k.name);
        assert_eq!((k.l2sq_i8)(&a, &b), 255 * 255 * 1024, "{}", k.name);
    }
}

#[test]
fn simd_kernels_are_used_on_x86_64_with_avx2() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        assert!(active().name.starts_with("simsimd-"), "active kernels: {}", active().name);
    }
}
