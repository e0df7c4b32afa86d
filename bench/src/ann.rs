//! Recall@k vs QPS: Naksha's HNSW (through the real, mmap'd segment) beside
//! `hnsw_rs`, on the same data, same `m` and `ef_construction`, in one run.
//! Queries run one at a time on one thread; the engines alternate per `ef`.

use std::time::Instant;

use anyhow::Result;
use hnsw_rs::prelude::{DistDot, DistL2, Distance, Hnsw};
use naksha_index::bitset::Bitset;
use naksha_index::hnsw::HnswParams;
use naksha_index::metric::Metric;
use naksha_index::quant::Quantization;
use naksha_index::segment::{Segment, SegmentConfig, SegmentData, Strategy};
use naksha_index::testing::{exact_knn, recall};
use naksha_storage::point::PointId;
use rayon::prelude::*;

use crate::datasets::Dataset;

/// Sweep settings.
#[derive(Debug, Clone)]
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
    /// Python peers to run too (`hnswlib`, `faiss`, `usearch`), see [`crate::peers`].
    pub python_peers: Vec<String>,
}

/// One point of a curve.
#[derive(Debug, Clone, Copy)]
pub struct CurvePoint {
    /// Beam width.
    pub ef: usize,
    /// Mean recall@k.
    pub recall: f64,
    /// Queries per second, one thread.
    pub qps: f64,
}

/// One engine's results.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
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
}

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> u64 {
    fs_err::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

trait Engine {
    fn search(&self, q: &[f32], k: usize, ef: usize) -> Vec<u32>;
}

struct NakshaEngine {
    seg: Segment,
    deleted: Bitset,
    _dir: tempfile::TempDir,
}

impl Engine for NakshaEngine {
    fn search(&self, q: &[f32], k: usize, ef: usize) -> Vec<u32> {
        self.seg.search(q, k, ef, Strategy::Graph, None, &self.deleted).into_iter().map(|n| n.node).collect()
    }
}

struct PeerEngine<D: Distance<f32> + Send + Sync + 'static>(Hnsw<'static, f32, D>);

impl<D: Distance<f32> + Send + Sync> Engine for PeerEngine<D> {
    fn search(&self, q: &[f32], k: usize, ef: usize) -> Vec<u32> {
        self.0.search(q, k, ef).into_iter().map(|n| n.d_id as u32).collect()
    }
}

fn build_naksha(ds: &Dataset, args: &AnnArgs, quantization: Quantization) -> Result<(NakshaEngine, f64, u64)> {
    let dir = tempfile::tempdir()?;
    let config = SegmentConfig {
        dim: ds.dim,
        metric: ds.metric,
        hnsw: HnswParams { m: args.m, ef_construction: args.ef_construction, ..HnswParams::default() },
        quantization,
        payload_index: Default::default(),
        text: None,
    };
    let data = SegmentData {
        ids: (0..ds.len() as u64).map(PointId::Num).collect(),
        vectors: ds.base.clone(),
        payloads: vec![serde_json::Value::Null; ds.len()],
        texts: Vec::new(),
    };
    let rss0 = rss_bytes();
    let t = Instant::now();
    let path = dir.path().join("seg");
    Segment::write(&path, &config, data)?;
    let seg = Segment::open(&path, &config)?;
    let secs = t.elapsed().as_secs_f64();
    let engine = NakshaEngine { deleted: Bitset::new(seg.len()), seg, _dir: dir };
    // Touch every page the search uses so the figure is resident memory, as for the peer.
    engine.search(&ds.queries[..ds.dim], args.k, 64);
    let rss = rss_bytes().saturating_sub(rss0).max(engine.seg.memory_bytes() as u64);
    Ok((engine, secs, rss))
}

fn build_peer<D>(ds: &Dataset, args: &AnnArgs, dist: D) -> (PeerEngine<D>, f64, u64)
where
    D: Distance<f32> + Send + Sync + 'static,
{
    let rss0 = rss_bytes();
    let t = Instant::now();
    let mut h = Hnsw::<f32, D>::new(args.m, ds.len(), 16, args.ef_construction, dist);
    let items: Vec<(&[f32], usize)> = ds.base.chunks_exact(ds.dim).enumerate().map(|(i, v)| (v, i)).collect();
    h.parallel_insert_slice(&items);
    h.set_searching_mode(true);
    let secs = t.elapsed().as_secs_f64();
    (PeerEngine(h), secs, rss_bytes().saturating_sub(rss0))
}

fn sweep_point(e: &dyn Engine, ds: &Dataset, truth: &[Vec<u32>], k: usize, ef: usize) -> CurvePoint {
    let t = Instant::now();
    let results: Vec<Vec<u32>> = ds.queries.chunks_exact(ds.dim).map(|q| e.search(q, k, ef)).collect();
    let secs = t.elapsed().as_secs_f64();
    let r = truth.iter().zip(&results).map(|(t, g)| recall(t, g)).sum::<f64>() / truth.len() as f64;
    CurvePoint { ef, recall: r, qps: truth.len() as f64 / secs }
}

/// Run the sweep.
pub fn run(ds: &Dataset, args: &AnnArgs) -> Result<AnnReport> {
    eprintln!("ground truth for {} queries ...", ds.num_queries());
    let truth: Vec<Vec<u32>> = ds
        .queries
        .par_chunks_exact(ds.dim)
        .map(|q| exact_knn(&ds.base, ds.dim, ds.metric, q, args.k).into_iter().map(|n| n.node).collect())
        .collect();
    let mut engines: Vec<(EngineRun, Box<dyn Engine>)> = Vec::new();
    eprintln!("building naksha ...");
    let (naksha, secs, rss) = build_naksha(ds, args, Quantization::None)?;
    let raw_plus_links = (ds.base.len() * 4 + naksha.seg.graph().links_bytes()) as u64;
    engines
        .push((EngineRun { name: "naksha".into(), build_secs: secs, rss_bytes: rss, curve: vec![] }, Box::new(naksha)));
    if args.int8 {
        eprintln!("building naksha-int8 ...");
        let (e, secs, rss) = build_naksha(ds, args, Quantization::Int8)?;
        engines.push((
            EngineRun { name: "naksha-int8".into(), build_secs: secs, rss_bytes: rss, curve: vec![] },
            Box::new(e),
        ));
    }
    if !args.skip_peer {
        eprintln!("building hnsw_rs ...");
        let (run, engine): (EngineRun, Box<dyn Engine>) = match ds.metric {
            Metric::L2 => {
                let (e, secs, rss) = build_peer(ds, args, DistL2 {});
                (EngineRun { name: "hnsw_rs".into(), build_secs: secs, rss_bytes: rss, curve: vec![] }, Box::new(e))
            }
            // Vectors are normalised for cosine, so 1 - dot is the cosine distance.
            Metric::Cosine | Metric::Dot => {
                let (e, secs, rss) = build_peer(ds, args, DistDot {});
                (EngineRun { name: "hnsw_rs".into(), build_secs: secs, rss_bytes: rss, curve: vec![] }, Box::new(e))
            }
        };
        engines.push((run, engine));
    }
    for &ef in &args.efs {
        for (run, engine) in engines.iter_mut() {
            let p = sweep_point(engine.as_ref(), ds, &truth, args.k, ef);
            eprintln!("{:>12} ef={ef:<4} recall={:.4} qps={:.0}", run.name, p.recall, p.qps);
            run.curve.push(p);
        }
    }
    // The in-process indexes are dropped here, before the Python peers start.
    let mut runs: Vec<EngineRun> = engines.into_iter().map(|(r, _)| r).collect();
    if !args.python_peers.is_empty() {
        runs.extend(crate::peers::run(ds, args, &truth)?);
    }
    Ok(AnnReport {
        dataset: ds.name.clone(),
        n: ds.len(),
        dim: ds.dim,
        metric: ds.metric,
        queries: ds.num_queries(),
        args: args.clone(),
        threads: rayon::current_num_threads(),
        raw_plus_links,
        engines: runs,
    })
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
