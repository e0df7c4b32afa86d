//! Ingest throughput: the same points written through the embedded API
//! ([`naksha_query::Collection::upsert`]) and through HTTP as NDJSON, by one
//! or several writers, each batch acknowledged only once it is durable (the
//! write-ahead log fsynced). Time runs from the first batch sent to the last
//! acknowledgement, so it includes indexing work the writers are held back
//! for (memtable back-pressure), but not flushes still running afterwards.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, Result};
use naksha_index::metric::Metric;
use naksha_query::{CollectionConfig, Database, Point};
use serde_json::json;

use crate::common::agent;
use crate::common::{create_collection, post};
use crate::datasets::synthetic;

/// Settings of one run.
#[derive(Clone, Debug)]
pub struct IngestArgs {
    /// Points written per cell.
    pub points: usize,
    /// Dimension (seeded clustered vectors, l2).
    pub dim: usize,
    /// Points per batch (request).
    pub batch: usize,
    /// Writer counts, one cell each per path.
    pub writers: Vec<usize>,
}

/// One path at one writer count.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestCell {
    /// `embedded` or `http-ndjson`.
    pub path: &'static str,
    /// Concurrent writers.
    pub writers: usize,
    /// Points acknowledged.
    pub points: usize,
    /// Seconds from the first batch to the last acknowledgement.
    pub secs: f64,
}

impl IngestCell {
    /// Acknowledged points per second.
    pub fn rate(&self) -> f64 {
        self.points as f64 / self.secs.max(1e-9)
    }
}

/// Run every cell, each into a fresh collection in a fresh data directory.
pub fn run(args: &IngestArgs) -> Result<Vec<IngestCell>> {
    if args.batch == 0 || args.points == 0 || args.writers.contains(&0) {
        bail!("points, batch and writers must be at least 1");
    }
    let ds = synthetic(args.points, 0, args.dim, Metric::L2, 11);
    let mut cells = Vec::new();
    for &writers in &args.writers {
        cells.push(embedded(&ds.base, args, writers)?);
        cells.push(http(&ds.base, args, writers)?);
    }
    Ok(cells)
}

/// Hands out batch numbers to `writers` threads running `write(batch)`;
/// returns the seconds until all are acknowledged.
fn drive(batches: usize, writers: usize, write: impl Fn(usize) -> Result<()> + Sync) -> Result<f64> {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..writers)
            .map(|_| {
                s.spawn(|| loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        return Ok(());
                    }
                    write(b)?;
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a writer panicked"))))
    })?;
    Ok(started.elapsed().as_secs_f64())
}

fn embedded(base: &[f32], args: &IngestArgs, writers: usize) -> Result<IngestCell> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path())?;
    let c = db.create_collection("ingest", CollectionConfig::new(args.dim, Metric::L2))?;
    let rows: Vec<&[f32]> = base.chunks_exact(args.dim).collect();
    let batches = rows.len().div_ceil(args.batch);
    let secs = drive(batches, writers, |b| {
        let start = b * args.batch;
        let points = rows[start..(start + args.batch).min(rows.len())]
            .iter()
            .enumerate()
            .map(|(i, v)| Point::new(((start + i) as u64).into(), v.to_vec(), json!({"g": (start + i) % 10})))
            .collect();
        c.upsert(points)?;
        Ok(())
    })?;
    if c.len() != rows.len() {
        bail!("embedded: {} points acknowledged, {} in the collection", rows.len(), c.len());
    }
    Ok(IngestCell { path: "embedded", writers, points: rows.len(), secs })
}

fn http(base: &[f32], args: &IngestArgs, writers: usize) -> Result<IngestCell> {
    let dir = tempfile::tempdir()?;
    let (url, _server) = crate::load::start_server(dir.path(), None)?;
    let a = agent();
    create_collection(&a, &url, "ingest", &json!({"vectors": {"dim": args.dim, "metric": "l2"}}))?;
    // Bodies are made before the clock starts: the client's JSON work is not Naksha's.
    let rows: Vec<&[f32]> = base.chunks_exact(args.dim).collect();
    let bodies: Vec<String> = rows
        .chunks(args.batch)
        .enumerate()
        .map(|(b, chunk)| {
            chunk.iter().enumerate().fold(String::new(), |mut s, (i, v)| {
                let id = b * args.batch + i;
                let _ = writeln!(s, "{}", json!({"id": id, "vector": v, "payload": {"g": id % 10}}));
                s
            })
        })
        .collect();
    let points_url = format!("{url}/v1/collections/ingest/points");
    let secs =
        drive(bodies.len(), writers, |b| post(&a, &points_url, "application/x-ndjson", bodies[b].clone()).map(|_| ()))?;
    let info: serde_json::Value =
        serde_json::from_str(&a.get(format!("{url}/v1/collections/ingest")).call()?.into_body().read_to_string()?)?;
    if info["points"].as_u64() != Some(rows.len() as u64) {
        bail!("http: {} points acknowledged, collection says {}", rows.len(), info["points"]);
    }
    Ok(IngestCell { path: "http-ndjson", writers, points: rows.len(), secs })
}

/// The report as markdown.
pub fn markdown(cells: &[IngestCell], args: &IngestArgs, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Ingest: durable upserts, embedded API and HTTP NDJSON\n");
    let _ = writeln!(s, "- Machine: {}", crate::common::machine());
    let _ = writeln!(
        s,
        "- Data: {} seeded clustered vectors, dim {}, l2, payload `{{\"g\": id % 10}}`; batches of {} points; \
         each cell a fresh collection (HNSW m 16, ef_construction 200) in a fresh data directory",
        args.points, args.dim, args.batch
    );
    let _ = writeln!(
        s,
        "- Time: first batch sent to last batch acknowledged (WAL fsynced); HTTP bodies are made before the clock \
         starts, the server runs in the same process"
    );
    let _ = writeln!(s, "- Command: `{command}`\n");
    let _ = writeln!(s, "| path | writers | points | seconds | points/s | HTTP / embedded |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for c in cells {
        let ratio = cells
            .iter()
            .find(|e| e.path == "embedded" && e.writers == c.writers)
            .filter(|_| c.path != "embedded")
            .map_or("".into(), |e| format!("{:.2}×", c.rate() / e.rate()));
        let _ =
            writeln!(s, "| {} | {} | {} | {:.2} | {:.0} | {ratio} |", c.path, c.writers, c.points, c.secs, c.rate());
    }
    s
}
