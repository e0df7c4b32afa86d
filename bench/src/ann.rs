//! Recall@k vs QPS: Naksha's HNSW (through the real, mmap'd segment) beside
//! `hnsw_rs` and usearch in-process, on the same data, same `m` and
//! `ef_construction`, in one run; then the same sweep under filters ([`crate::filtered`]).
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
use naksha_query::planner::Planner;
use naksha_storage::point::PointId;
use rayon::prelude::*;

use crate::curve::{rss_bytes, AnnArgs, AnnReport, CurvePoint, Engine, EngineRun};
use crate::curve::{Filter, FilteredSweep, NamedCurve};
use crate::datasets::Dataset;

struct NakshaEngine {
    seg: Segment,
    deleted: Bitset,
    _dir: tempfile::TempDir,
}

impl NakshaEngine {
    /// Filtered searches take the planner's strategy, as the server does, unless `graph_only`.
    fn search_with(&self, q: &[f32], k: usize, ef: usize, filter: Option<&Filter>, graph_only: bool) -> Vec<u32> {
        let strategy = match filter {
            Some(f) if !graph_only => Planner::default().choose(self.seg.len(), f.admitted, ef, k),
            _ => Strategy::Graph,
        };
        let allowed = filter.map(|f| &f.allowed);
        self.seg.search(q, k, ef, strategy, allowed, &self.deleted).into_iter().map(|n| n.node).collect()
    }
}

impl Engine for NakshaEngine {
    fn search(&self, q: &[f32], k: usize, ef: usize, filter: Option<&Filter>) -> Vec<u32> {
        self.search_with(q, k, ef, filter, false)
    }
}

/// Naksha with the filtered graph walk forced (no exact scans), to compare walks with walks.
struct GraphOnly<'a>(&'a NakshaEngine);

impl Engine for GraphOnly<'_> {
    fn search(&self, q: &[f32], k: usize, ef: usize, filter: Option<&Filter>) -> Vec<u32> {
        self.0.search_with(q, k, ef, filter, true)
    }
}

struct PeerEngine<D: Distance<f32> + Send + Sync + 'static>(Hnsw<'static, f32, D>);

impl<D: Distance<f32> + Send + Sync> Engine for PeerEngine<D> {
    fn search(&self, q: &[f32], k: usize, ef: usize, filter: Option<&Filter>) -> Vec<u32> {
        let found = match filter {
            None => self.0.search(q, k, ef),
            Some(f) => {
                let admit = |id: &usize| f.allowed.contains(*id);
                self.0.search_filter(q, k, ef, Some(&admit))
            }
        };
        found.into_iter().map(|n| n.d_id as u32).collect()
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
    engine.search(&ds.queries[..ds.dim], args.k, 64, None);
    let rss = rss_bytes().saturating_sub(rss0).max(engine.seg.memory_bytes() as u64);
    Ok((engine, secs, rss))
}

fn build_peer<D>(ds: &Dataset, args: &AnnArgs, dist: D) -> (Box<dyn Engine>, f64, u64)
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
    (Box::new(PeerEngine(h)), secs, rss_bytes().saturating_sub(rss0))
}

fn sweep_point(
    e: &dyn Engine,
    ds: &Dataset,
    truth: &[Vec<u32>],
    k: usize,
    ef: usize,
    f: Option<&Filter>,
) -> CurvePoint {
    let t = Instant::now();
    let results: Vec<Vec<u32>> = ds.queries.chunks_exact(ds.dim).map(|q| e.search(q, k, ef, f)).collect();
    let secs = t.elapsed().as_secs_f64();
    let r = truth.iter().zip(&results).map(|(t, g)| recall(t, g)).sum::<f64>() / truth.len() as f64;
    CurvePoint { ef, recall: r, qps: truth.len() as f64 / secs }
}

/// Sweep `ef` for every engine, alternating engines per `ef` so drift in the machine hits all alike.
fn sweep(
    engines: &[(&str, &dyn Engine)],
    ds: &Dataset,
    args: &AnnArgs,
    f: Option<&Filter>,
    truth: &[Vec<u32>],
) -> Vec<NamedCurve> {
    let efs = if f.is_some() { &args.filter_efs } else { &args.efs };
    let truth = f.map_or(truth, |f| &f.truth);
    let mut curves: Vec<NamedCurve> =
        engines.iter().map(|(name, _)| NamedCurve { name: (*name).to_owned(), curve: vec![] }).collect();
    for &ef in efs {
        for ((name, engine), c) in engines.iter().zip(&mut curves) {
            let p = sweep_point(*engine, ds, truth, args.k, ef, f);
            let label = f.map_or(String::new(), |f| format!(" {}%", f.percent));
            eprintln!("{name:>12}{label} ef={ef:<4} recall={:.4} qps={:.0}", p.recall, p.qps);
            c.curve.push(p);
        }
    }
    curves
}

/// Exact top `k` of every query over the whole base.
fn ground_truth(ds: &Dataset, k: usize) -> Vec<Vec<u32>> {
    ds.queries
        .par_chunks_exact(ds.dim)
        .map(|q| exact_knn(&ds.base, ds.dim, ds.metric, q, k).into_iter().map(|n| n.node).collect())
        .collect()
}

/// Run the sweep, then the filtered sweeps on the same indexes.
pub fn run(ds: &Dataset, args: &AnnArgs) -> Result<AnnReport> {
    eprintln!("ground truth for {} queries ...", ds.num_queries());
    let truth = ground_truth(ds, args.k);
    let buckets = crate::filtered::buckets(ds.len(), args.filter_seed);
    let filters: Vec<Filter> =
        args.filter_percents.iter().map(|&p| crate::filtered::filter(ds, &buckets, p, args.k)).collect();
    let mut runs = Vec::new();
    let new_run =
        |name: &str, build_secs, rss_bytes| EngineRun { name: name.into(), build_secs, rss_bytes, curve: vec![] };
    eprintln!("building naksha ...");
    let (naksha, secs, rss) = build_naksha(ds, args, Quantization::None)?;
    let raw_plus_links = (ds.base.len() * 4 + naksha.seg.graph().links_bytes()) as u64;
    runs.push(new_run("naksha", secs, rss));
    let int8 = if args.int8 {
        eprintln!("building naksha-int8 ...");
        let (e, secs, rss) = build_naksha(ds, args, Quantization::Int8)?;
        runs.push(new_run("naksha-int8", secs, rss));
        Some(e)
    } else {
        None
    };
    let peer = if args.skip_peer {
        None
    } else {
        eprintln!("building hnsw_rs ...");
        let (e, secs, rss) = match ds.metric {
            Metric::L2 => build_peer(ds, args, DistL2 {}),
            // Vectors are normalised for cosine, so 1 - dot is the cosine distance.
            Metric::Cosine | Metric::Dot => build_peer(ds, args, DistDot {}),
        };
        runs.push(new_run("hnsw_rs", secs, rss));
        eprintln!("building usearch ...");
        let (u, secs, rss) = crate::usearch_peer::build(ds, args)?;
        runs.push(new_run("usearch", secs, rss));
        Some((e, u))
    };
    let mut engines: Vec<(&str, &dyn Engine)> = vec![("naksha", &naksha)];
    engines.extend(int8.as_ref().map(|e| ("naksha-int8", e as &dyn Engine)));
    if let Some((hnsw_rs, usearch)) = &peer {
        engines.push(("hnsw_rs", hnsw_rs.as_ref()));
        engines.push(("usearch", usearch));
    }
    for (run, c) in runs.iter_mut().zip(sweep(&engines, ds, args, None, &truth)) {
        run.curve = c.curve;
    }
    let graph_only = GraphOnly(&naksha);
    engines.insert(1, ("naksha-graph", &graph_only));
    let mut filtered: Vec<FilteredSweep> = filters
        .iter()
        .map(|f| FilteredSweep {
            percent: f.percent,
            admitted: f.admitted,
            runs: sweep(&engines, ds, args, Some(f), &truth),
        })
        .collect();
    // The in-process indexes are dropped here, before the Python peers start.
    drop(engines);
    drop((naksha, int8, peer));
    if !args.python_peers.is_empty() {
        for (run, curves) in crate::peers::run(ds, args, &truth, &buckets, &filters)? {
            runs.push(run);
            for (sweep, c) in filtered.iter_mut().zip(curves) {
                sweep.runs.push(c);
            }
        }
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
        filtered,
    })
}
