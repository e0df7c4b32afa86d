//! Server load: N concurrent HTTP clients on loopback for a bounded time,
//! measuring QPS and p50/p99 latency for search and for upsert.
//!
//! By default the command starts its own `naksha` server in-process on an
//! ephemeral loopback port over a temporary data directory, so it needs
//! nothing else; `--url` targets a running server instead (loopback only).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{agent, percentile};
use anyhow::{bail, Context, Result};
use naksha_index::testing::{clustered, Rng};
use serde_json::json;

/// Load settings.
#[derive(Debug, Clone)]
pub struct LoadArgs {
    /// Points loaded before the search phase.
    pub points: usize,
    /// Vector dimension.
    pub dim: usize,
    /// Client counts to run.
    pub clients: Vec<usize>,
    /// Seconds per (operation, client count) cell.
    pub seconds: f64,
    /// Points per upsert request.
    pub upsert_batch: usize,
}

/// One measured cell.
#[derive(Debug, Clone)]
pub struct Cell {
    /// `search` or `upsert`.
    pub op: &'static str,
    /// Concurrent clients.
    pub clients: usize,
    /// Requests completed.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Requests per second.
    pub qps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

fn post(agent: &ureq::Agent, url: &str, body: String) -> Result<u16> {
    let res = agent.post(url).header("Content-Type", "application/json").send(body)?;
    let status = res.status().as_u16();
    res.into_body().read_to_string()?;
    Ok(status)
}

fn run_cell(base: &str, op: &'static str, clients: usize, args: &LoadArgs, next_id: &Arc<AtomicU64>) -> Cell {
    let stop = Arc::new(AtomicBool::new(false));
    let url = match op {
        "search" => format!("{base}/v1/collections/load/query"),
        _ => format!("{base}/v1/collections/load/points"),
    };
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, url, next_id, dim, batch) = (stop.clone(), url.clone(), next_id.clone(), args.dim, args.upsert_batch);
            std::thread::spawn(move || {
                let agent = agent();
                let mut rng = Rng::new(c as u64 + 1000);
                let (mut lat, mut errors) = (Vec::new(), 0u64);
                while !stop.load(Relaxed) {
                    let body = if op == "search" {
                        let v: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
                        json!({"vector": v, "limit": 10}).to_string()
                    } else {
                        let first = next_id.fetch_add(batch as u64, Relaxed);
                        let points: Vec<_> = (first..first + batch as u64)
                            .map(|id| json!({"id": id, "vector": (0..dim).map(|_| rng.normal()).collect::<Vec<f32>>(), "payload": {"g": id % 10}}))
                            .collect();
                        json!({ "points": points }).to_string()
                    };
                    let t = Instant::now();
                    match post(&agent, &url, body) {
                        Ok(200) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        if let Ok((l, e)) = h.join() {
            all.extend(l);
            errors += e;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Cell {
        op,
        clients,
        requests: all.len() as u64,
        errors,
        qps: all.len() as f64 / secs,
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
    }
}

/// Start an in-process server on an ephemeral loopback port; returns its base
/// URL and a guard that shuts it down.
pub fn start_server(data_dir: &std::path::Path, models_dir: Option<&std::path::Path>) -> Result<(String, impl Drop)> {
    start_server_with(data_dir, models_dir, |_| {})
}

/// [`start_server`], with the settings changed by `tweak` first.
pub fn start_server_with(
    data_dir: &std::path::Path,
    models_dir: Option<&std::path::Path>,
    tweak: impl FnOnce(&mut naksha_server::settings::Settings),
) -> Result<(String, impl Drop)> {
    let mut settings = naksha_server::settings::Settings::load(None, std::iter::empty())?;
    tweak(&mut settings);
    settings.server.http_addr = "127.0.0.1:0".parse()?;
    settings.server.grpc_addr = "127.0.0.1:0".parse()?;
    settings.storage.data_dir = data_dir.to_owned();
    if let Some(m) = models_dir {
        settings.models.dir = m.to_owned();
    }
    // Find a free port first so the URL is known before the server logs it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    settings.server.http_addr = format!("127.0.0.1:{port}").parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = std::thread::spawn(move || {
        rt.block_on(naksha_server::run(settings, async {
            let _ = rx.await;
        }))
    });
    struct Guard(Option<tokio::sync::oneshot::Sender<()>>, Option<std::thread::JoinHandle<Result<()>>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
            if let Some(h) = self.1.take() {
                let _ = h.join();
            }
        }
    }
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if agent().get(&format!("{url}/readyz")).call().is_ok_and(|r| r.status() == 200) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the in-process server did not become ready");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((url, Guard(Some(tx), Some(handle))))
}

/// Refuse any target but a loopback address: load never leaves the machine.
pub fn require_loopback(base: &str) -> Result<()> {
    let host = base.trim_start_matches("http://").split(['/', ':']).next().context("bad --url")?;
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        bail!("load tests only target loopback addresses, not {host}");
    }
    Ok(())
}

/// Create the `load` collection and fill it.
pub fn prepare(base: &str, args: &LoadArgs) -> Result<()> {
    let agent = agent();
    let cfg = json!({"vectors": {"dim": args.dim, "metric": "cosine"}, "payload_index": {"g": "integer"}});
    let res = agent
        .put(&format!("{base}/v1/collections/load"))
        .header("Content-Type", "application/json")
        .send(cfg.to_string())?;
    if !matches!(res.status().as_u16(), 200 | 201) {
        bail!("cannot create the load collection: {}", res.status());
    }
    let data = clustered(args.points, args.dim, 50, 0.5, 3);
    for (b, chunk) in data.chunks(args.dim * 1000).enumerate() {
        let points: Vec<_> = chunk
            .chunks_exact(args.dim)
            .enumerate()
            .map(|(i, v)| json!({"id": (b * 1000 + i) as u64, "vector": v, "payload": {"g": i % 10}}))
            .collect();
        let st = post(&agent, &format!("{base}/v1/collections/load/points"), json!({ "points": points }).to_string())?;
        if st != 200 {
            bail!("loading failed with status {st}");
        }
    }
    Ok(())
}

/// Run every cell against `base` (which must be a loopback URL).
pub fn run(base: &str, args: &LoadArgs) -> Result<Vec<Cell>> {
    require_loopback(base)?;
    prepare(base, args)?;
    let next_id = Arc::new(AtomicU64::new(args.points as u64 + 1_000_000));
    let mut cells = Vec::new();
    for op in ["search", "upsert"] {
        for &c in &args.clients {
            let cell = run_cell(base, op, c, args, &next_id);
            eprintln!(
                "{op:>6} clients={c:<3} qps={:.0} p50={:.2}ms p99={:.2}ms errors={}",
                cell.qps, cell.p50_ms, cell.p99_ms, cell.errors
            );
            cells.push(cell);
        }
    }
    Ok(cells)
}

/// Markdown table of a load run.
pub fn markdown(cells: &[Cell], args: &LoadArgs, command: &str) -> String {
    let mut s = format!(
        "### Server load (HTTP, loopback)\n\n- collection: {} points, dim {}, cosine; search: limit 10, random query vectors; upsert: {} points per request, fsynced before the reply\n- {} s per cell; clients are blocking HTTP/1.1 connections in threads of the same process\n- machine: {}\n- command: `{command}`\n\n| operation | clients | requests | QPS | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|\n",
        args.points, args.dim, args.upsert_batch, args.seconds, crate::common::machine()
    );
    for c in cells {
        s += &format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} |\n",
            c.op, c.clients, c.requests, c.qps, c.p50_ms, c.p99_ms, c.errors
        );
    }
    s
}
