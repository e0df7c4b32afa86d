//! The shared shapes of an ANN sweep: its settings, recall/QPS curves, engine
//! runs and reports, filters and their ground truth, and the engine trait the
//! in-process engines implement. `ann` runs sweeps, `peers`
//! and `usearch_peer` add engines, `filtered` and
//! `report` write them up.

use std::fmt::Write;

use naksha_index::bitset::Bitset;
use naksha_index::metric::Metric;
use serde::Serialize;

/// Sweep settings.
#[derive(Debug, Clone, Serialize)]
pub struct AnnArgs {
    /// Links per node.
    pub m: usize,
    /// Build beam width.
    pub ef_construction: usize,
    /// Search beam widths to sweep.
    pub efs: Vec<usize>,
    /// Neighbours per query.
    pub k: usize,
    /// Also run Naksha with int8 quantization.
    pub int8: bool,
    /// Skip the peer (for Naksha-only runs).
    pub skip_peer: bool,
    /// Python peers to run too (`hnswlib`, `faiss`, `usearch`), see `peers`.
    pub python_peers: Vec<String>,
    /// Also sweep with filters admitting these percentages of the points, see `filtered`.
    pub filter_percents: Vec<u32>,
    /// Search beam widths to sweep under filters (a filtered walk visits about
    /// `1 / selectivity` times more nodes per unit of `ef`, so fewer are needed).
    pub filter_efs: Vec<usize>,
    /// Seed of the filters' buckets.
    pub filter_seed: u64,
}

/// One point of a curve.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CurvePoint {
    /// Beam width.
    pub ef: usize,
    /// Mean recall@k.
    pub recall: f64,
    /// Queries per second, one thread.
    pub qps: f64,
}

/// One engine's results.
#[derive(Debug, Clone, Serialize)]
pub struct EngineRun {
    /// Engine name.
    pub name: String,
    /// Build time in seconds.
    pub build_secs: f64,
    /// Resident memory growth while building and holding the index, bytes.
    pub rss_bytes: u64,
    /// Recall/QPS curve.
    pub curve: Vec<CurvePoint>,
}

/// A whole sweep.
#[derive(Debug, Clone, Serialize)]
pub struct AnnReport {
    /// Dataset name.
    pub dataset: String,
    /// Base vectors.
    pub n: usize,
    /// Dimension.
    pub dim: usize,
    /// Metric.
    pub metric: Metric,
    /// Queries.
    pub queries: usize,
    /// Settings.
    pub args: AnnArgs,
    /// Build threads.
    pub threads: usize,
    /// Raw vectors plus Naksha's graph links, bytes (the memory goal's yardstick).
    pub raw_plus_links: u64,
    /// Results per engine.
    pub engines: Vec<EngineRun>,
    /// The same sweep under each filter of `args.filter_percents`.
    pub filtered: Vec<FilteredSweep>,
}

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> u64 {
    crate::common::rss_of("self")
}

pub(crate) trait Engine {
    /// Top `k` ids for `q`, admitting only `filter`'s points when given.
    fn search(&self, q: &[f32], k: usize, ef: usize, filter: Option<&Filter>) -> Vec<u32>;
}

/// QPS at `target` recall, interpolated linearly between the bracketing sweep points.
pub fn qps_at(curve: &[CurvePoint], target: f64) -> Option<f64> {
    let mut pts: Vec<CurvePoint> = curve.to_vec();
    pts.sort_by(|a, b| a.recall.total_cmp(&b.recall));
    let hi = pts.iter().position(|p| p.recall >= target)?;
    if hi == 0 {
        // Even the smallest ef reaches the target: the best QPS among points that do.
        return pts.iter().filter(|p| p.recall >= target).map(|p| p.qps).reduce(f64::max);
    }
    let (a, b) = (pts[hi - 1], pts[hi]);
    let t = (target - a.recall) / (b.recall - a.recall).max(1e-12);
    Some(a.qps + t * (b.qps - a.qps))
}

/// One filter and its ground truth.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Percentage of buckets admitted.
    pub percent: u32,
    /// Admitted points.
    pub allowed: Bitset,
    /// Number of admitted points.
    pub admitted: usize,
    /// Exact top k among the admitted points, per query.
    pub truth: Vec<Vec<u32>>,
}

/// One engine's curve under one filter.
#[derive(Debug, Clone, Serialize)]
pub struct NamedCurve {
    /// Engine name.
    pub name: String,
    /// Recall/QPS points, one per ef.
    pub curve: Vec<CurvePoint>,
}

/// Every engine's curve under one filter.
#[derive(Debug, Clone, Serialize)]
pub struct FilteredSweep {
    /// Percentage of buckets admitted.
    pub percent: u32,
    /// Number of admitted points.
    pub admitted: usize,
    /// Curves per engine.
    pub runs: Vec<NamedCurve>,
}

/// The sweep's full table: per `ef`, every engine's recall and QPS.
pub fn ef_table(curves: &[(&str, &[CurvePoint])], efs: &[usize]) -> String {
    let mut s = String::new();
    let names: Vec<String> = curves.iter().map(|(name, _)| format!("{name} recall | {name} QPS")).collect();
    let _ = writeln!(s, "| ef | {} |", names.join(" | "));
    let _ = writeln!(s, "|---:|{}", "---:|---:|".repeat(curves.len()));
    for (i, ef) in efs.iter().enumerate() {
        let cells: Vec<String> = curves.iter().map(|(_, c)| format!("{:.4} | {:.0}", c[i].recall, c[i].qps)).collect();
        let _ = writeln!(s, "| {ef} | {} |", cells.join(" | "));
    }
    s
}
