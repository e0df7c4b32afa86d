//! SIMD kernels from `simsimd` (runtime dispatch inside the C library) and the
//! prefetch hint. This is the only module in `naksha-index` with `unsafe`.

use simsimd::{capabilities, SpatialSimilarity};

use super::Kernels;

type Probe = (fn() -> bool, &'static str);

fn isa_name() -> Option<&'static str> {
    let isas: [Probe; 8] = [
        (capabilities::uses_sapphire, "simsimd-sapphire"),
        (capabilities::uses_genoa, "simsimd-genoa"),
        (capabilities::uses_ice, "simsimd-ice"),
        (capabilities::uses_skylake, "simsimd-skylake"),
        (capabilities::uses_haswell, "simsimd-haswell"),
        (capabilities::uses_sve, "simsimd-sve"),
        (capabilities::uses_neon, "simsimd-neon"),
        (capabilities::uses_dynamic_dispatch, "simsimd-serial"),
    ];
    isas.iter().find(|(f, _)| f()).map(|(_, name)| *name)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    f32::dot(a, b).unwrap_or(f64::NAN) as f32
}

fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    f32::l2sq(a, b).unwrap_or(f64::NAN) as f32
}

fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    i8::dot(a, b).map_or(i32::MAX, |v| v.round() as i32)
}

fn l2sq_i8(a: &[i8], b: &[i8]) -> i32 {
    i8::l2sq(a, b).map_or(i32::MAX, |v| v.round() as i32)
}

/// simsimd's kernels, when the CPU has a SIMD level simsimd supports.
pub(super) fn kernels() -> Option<Kernels> {
    let name = isa_name()?;
    if name == "simsimd-serial" {
        return None;
    }
    Some(Kernels { name, dot, l2sq, dot_i8, l2sq_i8 })
}

/// Cache lines of a vector to prefetch ahead of scoring it; the hardware
/// prefetcher streams the rest once the first lines miss.
const PREFETCH_LINES: usize = 4;

/// Hint the CPU to start loading the first cache lines of `data`.
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = std::mem::size_of_val(data);
        let ptr = data.as_ptr().cast::<i8>();
        for line in 0..PREFETCH_LINES.min(bytes.div_ceil(64)) {
            // SAFETY: a prefetch is only a hint and never faults; the address stays
            // inside the live slice (line * 64 < its length in bytes). SSE is part of
            // the x86_64 baseline, so the instruction always exists.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.add(line * 64));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}
