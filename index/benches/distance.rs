//! Distance kernels side by side: `cargo bench -p naksha-index --bench distance`.
//! Bench names carry the kernel set (ISA) and the dimension, e.g. `simsimd-haswell/dot/384`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use naksha_index::distance;
use naksha_index::testing::Rng;

fn kernels(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    for dim in [128usize, 384, 768, 1536] {
        let a: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
        let b: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
        let ai: Vec<i8> = (0..dim).map(|_| rng.below(255) as i8).collect();
        let bi: Vec<i8> = (0..dim).map(|_| rng.below(255) as i8).collect();
        let mut g = c.benchmark_group(format!("kernels-{dim}"));
        g.throughput(Throughput::Elements(dim as u64));
        for k in distance::available() {
            g.bench_function(format!("{}_dot_{dim}", k.name), |x| x.iter(|| (k.dot)(black_box(&a), black_box(&b))));
            g.bench_function(format!("{}_l2sq_{dim}", k.name), |x| x.iter(|| (k.l2sq)(black_box(&a), black_box(&b))));
            g.bench_function(format!("{}_dot_i8_{dim}", k.name), |x| {
                x.iter(|| (k.dot_i8)(black_box(&ai), black_box(&bi)))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
