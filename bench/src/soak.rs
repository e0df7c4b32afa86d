//! Soak: a bounded mixed workload against an in-process server on loopback
//! (upserts that replace points in a rolling id window, deletes by id and by
//! filter, filtered and unfiltered queries; small flush thresholds so flushes
//! and merges run all the time), sampled at a fixed interval: resident memory,
//! open file descriptors, points, segments, disk bytes, and p50/p99 latency of
//! each operation. A healthy server stays flat after its warm-up.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use naksha_index::testing::Rng;
use serde::Serialize;
use serde_json::json;

use crate::common::{agent, percentile};

/// Soak settings.
#[derive(Debug, Clone, Serialize)]
pub struct SoakArgs {
    /// How long to run.
    pub seconds: f64,
    /// Seconds between samples.
    pub sample_seconds: f64,
    /// Vector dimension.
    pub dim: usize,
    /// Ids live in `0..window`: upserts replace, deletes remove, so the
    /// collection's size stays bounded.
    pub window: u64,
    /// Server flush threshold (points), small so flushes and merges keep running.
    pub flush_points: usize,
}

/// One sample.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Seconds since the start.
    pub t: f64,
    /// Process resident memory, bytes (server and load generator share the process).
    pub rss_bytes: u64,
    /// Open file descriptors of the process.
    pub open_files: u64,
    /// Live points.
    pub points: u64,
    /// Immutable segments.
    pub segments: u64,
    /// Bytes on disk (segments and WAL).
    pub disk_bytes: u64,
    /// Per operation: (name, requests, errors, p50 ms, p99 ms) in this interval.
    pub ops: Vec<(String, u64, u64, f64, f64)>,
}

impl Sample {
    /// One markdown table row (also the progress line).
    fn row(&self) -> String {
        format!(
            "| {:.0} | {:.1} | {} | {} | {} | {:.1} | {:.1} | {} |\n",
            self.t,
            self.rss_bytes as f64 / 1e6,
            self.open_files,
            self.points,
            self.segments,
            self.ops[0].4,
            self.ops[3].4,
            self.ops.iter().map(|o| o.2).sum::<u64>()
        )
    }
}

const OPS: [&str; 4] = ["upsert", "delete", "delete_filter", "query"];

#[derive(Default)]
struct Interval {
    lat: [Vec<f64>; 4],
    errors: [u64; 4],
}

fn body(op: usize, rng: &mut Rng, args: &SoakArgs) -> (String, String) {
    let id = |rng: &mut Rng| rng.below(args.window);
    match op {
        0 => {
            let points: Vec<_> = (0..50)
                .map(|_| {
                    let i = id(rng);
                    let v: Vec<f32> = (0..args.dim).map(|_| rng.normal()).collect();
                    json!({"id": i, "vector": v, "payload": {"g": i % 16, "b": i / 512, "note": "x".repeat((i % 200) as usize)}})
                })
                .collect();
            ("points".into(), json!({ "points": points }).to_string())
        }
        1 => ("points/delete".into(), json!({"ids": (0..20).map(|_| id(rng)).collect::<Vec<_>>()}).to_string()),
        2 => {
            // A narrow filter: one group in one block of 512 ids (about 32 points).
            let i = id(rng);
            let f = json!({"must": [{"key": "g", "match": i % 16}, {"key": "b", "match": i / 512}]});
            ("points/delete".into(), json!({ "filter": f }).to_string())
        }
        _ => {
            let v: Vec<f32> = (0..args.dim).map(|_| rng.normal()).collect();
            let q = if rng.below(2) == 0 {
                json!({"vector": v, "limit": 10, "filter": {"must": [{"key": "g", "match": rng.below(16)}]}})
            } else {
                json!({"vector": v, "limit": 10})
            };
            ("query".into(), q.to_string())
        }
    }
}

/// Run the soak against the in-process server at `base` (a loopback URL).
pub fn run(base: &str, args: &SoakArgs) -> Result<Vec<Sample>> {
    crate::load::require_loopback(base)?;
    let agent = agent();
    let cfg = json!({"vectors": {"dim": args.dim, "metric": "cosine"}, "payload_index": {"g": "integer"}});
    let res = agent
        .put(format!("{base}/v1/collections/soak"))
        .header("Content-Type", "application/json")
        .send(cfg.to_string())?;
    if !matches!(res.status().as_u16(), 200 | 201) {
        bail!("cannot create the soak collection: {}", res.status());
    }
    let interval = Arc::new(Mutex::new(Interval::default()));
    let stop = Arc::new(AtomicBool::new(false));
    // Two writers (upserts; deletes by id and by filter now and then) and two readers.
    let roles: [&[usize]; 4] = [&[0, 0, 0, 1], &[0, 0, 1, 2], &[3], &[3]];
    let handles: Vec<_> = roles
        .iter()
        .enumerate()
        .map(|(w, ops)| {
            let (interval, stop, base, args, ops) =
                (interval.clone(), stop.clone(), base.to_owned(), args.clone(), ops.to_vec());
            std::thread::spawn(move || {
                let agent = crate::common::agent();
                let mut rng = Rng::new(7 + w as u64);
                let mut k = 0;
                while !stop.load(Relaxed) {
                    let op = ops[k % ops.len()];
                    k += 1;
                    let (path, b) = body(op, &mut rng, &args);
                    let t = Instant::now();
                    let ok = agent
                        .post(format!("{base}/v1/collections/soak/{path}"))
                        .header("Content-Type", "application/json")
                        .send(b)
                        .is_ok_and(|mut r| r.status() == 200 && r.body_mut().read_to_string().is_ok());
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let mut iv = interval.lock().unwrap_or_else(|p| p.into_inner());
                    if ok {
                        iv.lat[op].push(ms);
                    } else {
                        iv.errors[op] += 1;
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed().as_secs_f64() < args.seconds {
        std::thread::sleep(Duration::from_secs_f64(args.sample_seconds.min(args.seconds)));
        let iv = std::mem::take(&mut *interval.lock().unwrap_or_else(|p| p.into_inner()));
        let info: serde_json::Value = serde_json::from_str(
            &agent.get(format!("{base}/v1/collections/soak")).call()?.body_mut().read_to_string()?,
        )?;
        let ops = OPS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut l = iv.lat[i].clone();
                l.sort_by(f64::total_cmp);
                ((*name).to_owned(), l.len() as u64, iv.errors[i], percentile(&l, 0.5), percentile(&l, 0.99))
            })
            .collect();
        let s = Sample {
            t: started.elapsed().as_secs_f64(),
            rss_bytes: crate::common::rss_of("self"),
            open_files: crate::common::open_files_of("self"),
            points: info["points"].as_u64().unwrap_or(0),
            segments: info["segments"].as_u64().unwrap_or(0),
            disk_bytes: info["disk_bytes"].as_u64().unwrap_or(0),
            ops,
        };
        eprint!("{}", s.row());
        samples.push(s);
    }
    stop.store(true, Relaxed);
    for h in handles {
        let _ = h.join();
    }
    Ok(samples)
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Markdown report: the run, then the second and the last third of the samples
/// side by side (the first third is warm-up), then every sample.
pub fn markdown(samples: &[Sample], args: &SoakArgs, command: &str) -> String {
    let mut s = format!(
        "### Soak (HTTP, loopback, in-process server)\n\n- {:.0} s, sampled every {:.0} s; dim {}, ids in a rolling window of {}; flush every {} points\n- writers: upserts of 50 points (replacing), deletes of 20 ids, deletes by filter; readers: queries (half filtered)\n- machine: {}\n- command: `{command}`\n\n",
        args.seconds,
        args.sample_seconds,
        args.dim,
        args.window,
        args.flush_points,
        crate::common::machine()
    );
    let n = samples.len();
    let (mid, last) =
        (&samples[n / 3..(2 * n / 3).max(n / 3 + 1).min(n)], &samples[(2 * n / 3).min(n.saturating_sub(1))..]);
    let row = |name: &str, f: &dyn Fn(&Sample) -> f64| {
        let (a, b) = (mean(mid.iter().map(f)), mean(last.iter().map(f)));
        format!("| {name} | {a:.1} | {b:.1} | {:+.1} % |\n", if a > 0.0 { (b - a) / a * 100.0 } else { 0.0 })
    };
    s += "| measure (mean) | middle third | last third | change |\n|---|---:|---:|---:|\n";
    s += &row("RSS, MB", &|x| x.rss_bytes as f64 / 1e6);
    s += &row("open files", &|x| x.open_files as f64);
    s += &row("points", &|x| x.points as f64);
    s += &row("segments", &|x| x.segments as f64);
    s += &row("disk, MB", &|x| x.disk_bytes as f64 / 1e6);
    for (i, op) in OPS.iter().enumerate() {
        s += &row(&format!("{op} p50 ms"), &|x| x.ops[i].3);
        s += &row(&format!("{op} p99 ms"), &|x| x.ops[i].4);
    }
    let errors: u64 = samples.iter().flat_map(|x| x.ops.iter().map(|o| o.2)).sum();
    let requests: u64 = samples.iter().flat_map(|x| x.ops.iter().map(|o| o.1)).sum();
    s += &format!("\n{requests} requests, {errors} errors.\n\n| t s | RSS MB | files | points | segments | upsert p99 ms | query p99 ms | errors |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for x in samples {
        s += &x.row();
    }
    s
}
