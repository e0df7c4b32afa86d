//! Filtered ANN: the sweep of `ann` again, on the same built indexes,
//! with filters that admit a given percentage of the points (10% and 1% by default).
//!
//! Each base point gets a seeded bucket in `0..100`, independent of its vector;
//! the filter at `p` percent admits the buckets below `p`. That is a range
//! filter on a numeric field, so the 1% set lies inside the 10% set. The ground
//! truth is the exact top k among the admitted points only.
//!
//! Engines: Naksha as the server runs it (the query planner picks a filtered
//! graph walk or an exact scan of the candidates, see [`naksha_query::planner`]),
//! Naksha forced to walk the graph (`naksha-graph`), `hnsw_rs`'s
//! `search_filter`, and the Python peers' own filtered searches (hnswlib's
//! filter function, faiss's `IDSelectorBitmap`, usearch's predicate search).

use std::fmt::Write;

use naksha_index::bitset::Bitset;
use naksha_index::testing::exact_knn;
use rayon::prelude::*;

use crate::curve::{qps_at, CurvePoint};
use crate::curve::{Filter, FilteredSweep};
use crate::datasets::Dataset;

/// Seeded buckets in `0..100`, one per point (splitmix64 of seed and index).
pub fn buckets(n: usize, seed: u64) -> Vec<u8> {
    (0..n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % 100) as u8
        })
        .collect()
}

/// The filter admitting buckets below `percent`, with its ground truth for `ds`'s queries.
pub fn filter(ds: &Dataset, buckets: &[u8], percent: u32, k: usize) -> Filter {
    let ids: Vec<usize> = (0..ds.len()).filter(|&i| u32::from(buckets[i]) < percent).collect();
    let mut allowed = Bitset::new(ds.len());
    for &i in &ids {
        allowed.insert(i);
    }
    let dim = ds.dim;
    let sub: Vec<f32> = ids.iter().flat_map(|&i| ds.base[i * dim..(i + 1) * dim].iter().copied()).collect();
    let truth = ds
        .queries
        .par_chunks_exact(dim)
        .map(|q| exact_knn(&sub, dim, ds.metric, q, k).into_iter().map(|n| ids[n.node as usize] as u32).collect())
        .collect();
    Filter { percent, allowed, admitted: ids.len(), truth }
}

/// Markdown for the filtered sweeps: QPS at recall targets, ratios, and the ef table.
pub fn markdown(sweeps: &[FilteredSweep], n: usize, efs: &[usize]) -> String {
    let mut s = String::new();
    let fmt = |q: Option<f64>| q.map_or("not reached".to_owned(), |q| format!("{q:.0}"));
    for sw in sweeps {
        let _ = writeln!(
            s,
            "#### Filtered: {}% of the points admitted ({} of {n})\n\n`naksha` is the planner's choice per query (graph walk or exact scan of the candidates), as the server runs it; `naksha-graph` always walks the graph.\n",
            sw.percent, sw.admitted
        );
        let _ = writeln!(s, "| engine | QPS @ recall 0.95 | QPS @ recall 0.99 | best recall |");
        let _ = writeln!(s, "|---|---:|---:|---:|");
        for r in &sw.runs {
            let best = r.curve.iter().map(|p| p.recall).fold(0.0, f64::max);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {best:.4} |",
                r.name,
                fmt(qps_at(&r.curve, 0.95)),
                fmt(qps_at(&r.curve, 0.99))
            );
        }
        if let Some(n) = sw.runs.iter().find(|r| r.name == "naksha") {
            let _ = writeln!(s, "\nRatios, naksha / peer (same run), QPS at recall 0.95 and 0.99:\n");
            for p in sw.runs.iter().filter(|r| !r.name.starts_with("naksha")) {
                let ratio = |t| match (qps_at(&n.curve, t), qps_at(&p.curve, t)) {
                    (Some(a), Some(b)) => format!("**{:.2}×**", a / b),
                    _ => "not reached by both".to_owned(),
                };
                let _ = writeln!(s, "- {}: {} and {}", p.name, ratio(0.95), ratio(0.99));
            }
        }
        let curves: Vec<(&str, &[CurvePoint])> = sw.runs.iter().map(|r| (r.name.as_str(), &r.curve[..])).collect();
        s.push('\n');
        s.push_str(&crate::curve::ef_table(&curves, efs));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_seeded_and_roughly_uniform() {
        let b = buckets(100_000, 7);
        assert_eq!(b, buckets(100_000, 7));
        assert_ne!(b, buckets(100_000, 8));
        assert!(b.iter().all(|&x| x < 100));
        let below_10 = b.iter().filter(|&&x| x < 10).count();
        let below_1 = b.iter().filter(|&&x| x < 1).count();
        assert!((9_000..11_000).contains(&below_10), "{below_10}");
        assert!((800..1_200).contains(&below_1), "{below_1}");
    }

    #[test]
    fn truth_is_the_exact_top_k_among_admitted_points() {
        let ds = crate::datasets::synthetic(3000, 20, 8, naksha_index::metric::Metric::L2, 3);
        let b = buckets(ds.len(), 1);
        let f = filter(&ds, &b, 10, 5);
        assert_eq!(f.admitted, b.iter().filter(|&&x| x < 10).count());
        assert_eq!(f.allowed.count(), f.admitted);
        for (q, t) in ds.queries.chunks_exact(ds.dim).zip(&f.truth) {
            assert_eq!(t.len(), 5);
            assert!(t.iter().all(|&i| f.allowed.contains(i as usize)));
            // No admitted point is closer than the 5th result.
            let worst = ds.metric.distance(q, &ds.base[t[4] as usize * ds.dim..][..ds.dim]);
            for i in f.allowed.iter().filter(|i| !t.contains(&(*i as u32))) {
                assert!(ds.metric.distance(q, &ds.base[i * ds.dim..][..ds.dim]) >= worst);
            }
        }
    }
}
