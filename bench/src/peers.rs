//! Python peers (hnswlib, faiss `IndexHNSWFlat`), driven by the same command
//! on the same data: the vectors and ground truth go to fvecs/ivecs files
//! (the filters as one bucket byte per point and one truth file per filter),
//! `bench/peers/ann_peers.py` builds and sweeps one peer per process (so memory
//! figures do not mix), and its JSON joins the report.
//!
//! The command creates `bench/.venv` from the pinned `bench/peers/requirements.txt`
//! on first use (PyPI only; hnswlib builds from source with the system C++ compiler).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::common::{bench_dir, ensure_venv};
use crate::curve::{AnnArgs, CurvePoint, EngineRun};
use crate::curve::{Filter, NamedCurve};
use crate::datasets::{write_fvecs, write_ivecs, Dataset};

/// A peer's unfiltered run and its curves under each filter, in the filters' order.
pub type PeerRun = (EngineRun, Vec<NamedCurve>);

/// Run every requested peer on `ds` with the sweep's settings, unfiltered and under each filter.
pub fn run_peers(
    ds: &Dataset,
    args: &AnnArgs,
    truth: &[Vec<u32>],
    buckets: &[u8],
    filters: &[Filter],
    python: &Path,
) -> Result<Vec<PeerRun>> {
    let dir = tempfile::tempdir()?;
    let (base, queries, gt) =
        (dir.path().join("base.fvecs"), dir.path().join("queries.fvecs"), dir.path().join("gt.ivecs"));
    write_fvecs(&base, ds.dim, &ds.base)?;
    write_fvecs(&queries, ds.dim, &ds.queries)?;
    write_ivecs(&gt, truth)?;
    let labels = dir.path().join("labels.u8");
    fs_err::write(&labels, buckets)?;
    let mut specs = Vec::new();
    for f in filters {
        let path = dir.path().join(format!("gt-{}.ivecs", f.percent));
        write_ivecs(&path, &f.truth)?;
        specs.push(format!("{}:{}", f.percent, path.display()));
    }
    let metric = match ds.metric {
        naksha_index::metric::Metric::L2 => "l2",
        naksha_index::metric::Metric::Cosine => "cosine",
        naksha_index::metric::Metric::Dot => "dot",
    };
    let list = |efs: &[usize]| efs.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let (efs, filter_efs) = (list(&args.efs), list(&args.filter_efs));
    let mut runs = Vec::new();
    for peer in &args.python_peers {
        eprintln!("running {peer} ...");
        let out = Command::new(python)
            .arg(bench_dir().join("peers/ann_peers.py"))
            .args(["--engine", peer, "--metric", metric, "--efs", &efs])
            .args(["--m", &args.m.to_string(), "--ef-construction", &args.ef_construction.to_string()])
            .args(["--k", &args.k.to_string(), "--threads", &rayon::current_num_threads().to_string()])
            .arg("--base")
            .arg(&base)
            .arg("--queries")
            .arg(&queries)
            .arg("--truth")
            .arg(&gt)
            .arg("--labels")
            .arg(&labels)
            .args(["--filtered", &specs.join(","), "--filter-efs", &filter_efs])
            .output()
            .with_context(|| format!("cannot run the {peer} peer"))?;
        if !out.status.success() {
            bail!("{peer} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let (run, filtered) = parse_run(&String::from_utf8_lossy(&out.stdout))?;
        for p in &run.curve {
            eprintln!("{:>12} ef={:<4} recall={:.4} qps={:.0}", run.name, p.ef, p.recall, p.qps);
        }
        if filtered.len() != filters.len() {
            bail!("{peer} returned {} filtered sweeps for {} filters", filtered.len(), filters.len());
        }
        runs.push((run, filtered));
    }
    Ok(runs)
}

fn parse_curve(v: &Value) -> Result<Vec<CurvePoint>> {
    Ok(v.as_array()
        .context("no curve")?
        .iter()
        .map(|p| CurvePoint {
            ef: p["ef"].as_u64().unwrap_or(0) as usize,
            recall: p["recall"].as_f64().unwrap_or(0.0),
            qps: p["qps"].as_f64().unwrap_or(0.0),
        })
        .collect())
}

/// Parse the peer script's JSON: the unfiltered run and the filtered curves (named after the peer).
pub fn parse_run(text: &str) -> Result<PeerRun> {
    let v: Value = serde_json::from_str(text).context("peer output is not JSON")?;
    let name = v["engine"].as_str().context("no engine")?.to_owned();
    let filtered = match v.get("filtered").and_then(Value::as_array) {
        Some(sweeps) => sweeps
            .iter()
            .map(|f| Ok(NamedCurve { name: name.clone(), curve: parse_curve(&f["curve"])? }))
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let run = EngineRun {
        build_secs: v["build_secs"].as_f64().unwrap_or(f64::NAN),
        rss_bytes: v["rss_bytes"].as_u64().unwrap_or(0),
        curve: parse_curve(&v["curve"])?,
        name,
    };
    Ok((run, filtered))
}

/// Create the venv if needed and run the peers.
pub fn run(
    ds: &Dataset,
    args: &AnnArgs,
    truth: &[Vec<u32>],
    buckets: &[u8],
    filters: &[Filter],
) -> Result<Vec<PeerRun>> {
    let python = ensure_venv()?;
    run_peers(ds, args, truth, buckets, filters, &python)
}
