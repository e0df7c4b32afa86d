//! Many tenants on one node: N tenants with one small collection each
//! (`points` × `dim` cosine vectors) and a key each, served by a `naksha`
//! server in a child process (this binary's hidden `serve` command) so its
//! start-up time, resident memory and open files are its own.
//!
//! Measured per tenant count: the time to set them up; after a restart, the
//! time until `/readyz` answers and RSS and open files then; query latency
//! (p50/p99, each tenant's own key) for hot tenants (a working set that stays
//! open) and cold ones (each queried once, in random order, so nearly every
//! query opens its tenant); RSS and open files after the cold pass.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use naksha_index::testing::Rng;
use serde_json::{json, Value};

use crate::common::{agent, percentile};

/// The admin key of the child server.
const ADMIN: &str = "bench-admin-key";

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct TenantsArgs {
    /// Tenant counts, one fresh data directory each.
    pub counts: Vec<usize>,
    /// Points per tenant.
    pub points: usize,
    /// Dimension.
    pub dim: usize,
    /// Tenants kept open at most (`tenants.max_open`).
    pub max_open: usize,
    /// Hot working set (tenants queried again and again).
    pub hot: usize,
    /// Queries in the hot pass.
    pub hot_queries: usize,
    /// Tenants queried once each in the cold pass.
    pub cold: usize,
    /// Parallel clients while setting up.
    pub setup_clients: usize,
    /// A `naksha-bench` binary, whose hidden `serve` command runs the server.
    pub server_exe: std::path::PathBuf,
}

/// One tenant count's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Tenants.
    pub tenants: usize,
    /// Seconds to create the tenants, their keys and collections and load their points.
    pub setup_s: f64,
    /// Seconds from spawning the server to `/readyz` 200.
    pub startup_s: f64,
    /// RSS after start-up, MiB.
    pub rss_start_mib: f64,
    /// Open files after start-up.
    pub fds_start: usize,
    /// Hot queries: p50 and p99, ms.
    pub hot_p50_ms: f64,
    /// Hot p99.
    pub hot_p99_ms: f64,
    /// Cold queries: p50, ms.
    pub cold_p50_ms: f64,
    /// Cold p99.
    pub cold_p99_ms: f64,
    /// RSS after the cold pass, MiB.
    pub rss_end_mib: f64,
    /// Open files after the cold pass.
    pub fds_end: usize,
    /// Data directory size, MiB.
    pub disk_mib: f64,
}

/// The child server.
struct Spawned {
    child: Child,
    url: String,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(exe: &Path, data: &Path, max_open: usize) -> Result<(Spawned, f64)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let started = Instant::now();
    let child = Command::new(exe)
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .env("NAKSHA_API_KEY", ADMIN)
        .env("NAKSHA__TENANTS__MAX_OPEN", max_open.to_string())
        .env("NAKSHA__LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start the server child")?;
    let server = Spawned { child, url: format!("http://127.0.0.1:{port}") };
    let a = agent();
    loop {
        if a.get(format!("{}/readyz", server.url)).call().is_ok_and(|r| r.status() == 200) {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the server did not become ready in 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((server, started.elapsed().as_secs_f64()))
}

/// RSS in MiB and open files of a process.
fn usage(pid: u32) -> (f64, usize) {
    let pid = pid.to_string();
    (crate::common::rss_of(&pid) as f64 / (1 << 20) as f64, crate::common::open_files_of(&pid) as usize)
}

fn send(a: &ureq::Agent, method: &str, url: &str, key: &str, body: &Value) -> Result<Value> {
    let req = match method {
        "PUT" => a.put(url),
        _ => a.post(url),
    };
    let res = req
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())?;
    let status = res.status().as_u16();
    let v: Value = serde_json::from_str(&res.into_body().read_to_string()?).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        bail!("{method} {url}: {status} {v}");
    }
    Ok(v)
}

fn vector(rng: &mut Rng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| (rng.normal() * 1000.0).round() / 1000.0).collect()
}

/// Create `n` tenants with a key and a loaded collection each; returns the keys.
fn set_up(url: &str, args: &TenantsArgs, n: usize) -> Result<Vec<String>> {
    let next = AtomicUsize::new(0);
    let bar = crate::common::progress(n, format!("setting up {n} tenants"));
    let mut keys = vec![String::new(); n];
    let results: Vec<Result<Vec<(usize, String)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.setup_clients)
            .map(|c| {
                let (next, bar) = (&next, &bar);
                s.spawn(move || -> Result<Vec<(usize, String)>> {
                    let a = agent();
                    let mut rng = Rng::new(7 + c as u64);
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Relaxed);
                        if i >= n {
                            return Ok(out);
                        }
                        let t = format!("t{i:05}");
                        send(&a, "POST", &format!("{url}/v1/tenants"), ADMIN, &json!({"name": t}))?;
                        let k = send(
                            &a,
                            "POST",
                            &format!("{url}/v1/tenants/{t}/keys"),
                            ADMIN,
                            &json!({"role": "tenant_admin"}),
                        )?;
                        let key = k["key"].as_str().context("no key")?.to_owned();
                        let cfg = json!({"vectors": {"dim": args.dim, "metric": "cosine"}});
                        send(&a, "PUT", &format!("{url}/v1/collections/docs"), &key, &cfg)?;
                        let points: Vec<Value> = (0..args.points)
                            .map(|id| json!({"id": id, "vector": vector(&mut rng, args.dim)}))
                            .collect();
                        send(
                            &a,
                            "POST",
                            &format!("{url}/v1/collections/docs/points"),
                            &key,
                            &json!({"points": points}),
                        )?;
                        out.push((i, key));
                        bar.inc(1);
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| bail!("a setup client panicked"))).collect()
    });
    bar.finish_and_clear();
    for r in results {
        for (i, k) in r? {
            keys[i] = k;
        }
    }
    Ok(keys)
}

/// Query latencies (ms) of one query per listed tenant, in order.
fn query_all(url: &str, keys: &[String], order: &[usize], dim: usize) -> Result<Vec<f64>> {
    let a = agent();
    let mut rng = Rng::new(99);
    let mut lat = Vec::with_capacity(order.len());
    for &i in order {
        let body = json!({"vector": vector(&mut rng, dim), "limit": 10});
        let t = Instant::now();
        let v = send(&a, "POST", &format!("{url}/v1/collections/docs/query"), &keys[i], &body)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        if v["results"].as_array().map_or(0, Vec::len) != 10 {
            bail!("tenant {i}: expected 10 results, got {v}");
        }
    }
    Ok(lat)
}

/// One tenant count.
pub fn run_one(args: &TenantsArgs, n: usize, data: &Path) -> Result<Row> {
    let started = Instant::now();
    let keys = {
        let (server, _) = spawn(&args.server_exe, data, args.max_open)?;
        set_up(&server.url, args, n)?
    };
    let setup_s = started.elapsed().as_secs_f64();
    let (server, startup_s) = spawn(&args.server_exe, data, args.max_open)?;
    let pid = server.child.id();
    std::thread::sleep(Duration::from_millis(200));
    let (rss_start_mib, fds_start) = usage(pid);
    let mut rng = Rng::new(5);
    let hot_set: Vec<usize> = (0..args.hot.min(n)).map(|_| rng.below(n as u64) as usize).collect();
    // Warm the working set, then measure.
    query_all(&server.url, &keys, &hot_set, args.dim)?;
    let order: Vec<usize> = (0..args.hot_queries).map(|q| hot_set[q % hot_set.len()]).collect();
    let mut hot = query_all(&server.url, &keys, &order, args.dim)?;
    hot.sort_by(f64::total_cmp);
    let mut cold_order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        cold_order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    cold_order.retain(|i| !hot_set.contains(i));
    cold_order.truncate(args.cold);
    let mut cold = query_all(&server.url, &keys, &cold_order, args.dim)?;
    cold.sort_by(f64::total_cmp);
    let (rss_end_mib, fds_end) = usage(pid);
    drop(server);
    let row = Row {
        tenants: n,
        setup_s,
        startup_s,
        rss_start_mib,
        fds_start,
        hot_p50_ms: percentile(&hot, 0.5),
        hot_p99_ms: percentile(&hot, 0.99),
        cold_p50_ms: percentile(&cold, 0.5),
        cold_p99_ms: percentile(&cold, 0.99),
        rss_end_mib,
        fds_end,
        disk_mib: crate::common::dir_bytes(data) as f64 / (1 << 20) as f64,
    };
    eprintln!("{row:?}");
    Ok(row)
}

/// Every tenant count, each in a fresh directory under `work`.
pub fn run(args: &TenantsArgs, work: &Path) -> Result<Vec<Row>> {
    args.counts.iter().map(|&n| run_one(args, n, &work.join(format!("tenants-{n}")))).collect()
}

/// Markdown report.
pub fn markdown(rows: &[Row], args: &TenantsArgs, command: &str) -> String {
    let mut s = format!(
        "### Many tenants on one node\n\n- each tenant: one collection of {} × {}-d cosine points, one tenant_admin key; queries with each tenant's own key (limit 10)\n\
         - server in a child process, `tenants.max_open` = {}; hot: {} tenants queried {} times in all after a warm-up; cold: {} other tenants queried once each, in random order\n\
         - start-up: spawn to `/readyz` 200 after a restart; RSS and open files of the server process\n- machine: {}\n- command: `{command}`\n\n\
         | tenants | setup s | start-up s | RSS at start MiB | open files at start | hot p50 ms | hot p99 ms | cold p50 ms | cold p99 ms | RSS after cold MiB | open files after cold | disk MiB |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        args.points, args.dim, args.max_open, args.hot, args.hot_queries, args.cold, crate::common::machine()
    );
    for r in rows {
        s += &format!(
            "| {} | {:.0} | {:.2} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {:.0} |\n",
            r.tenants,
            r.setup_s,
            r.startup_s,
            r.rss_start_mib,
            r.fds_start,
            r.hot_p50_ms,
            r.hot_p99_ms,
            r.cold_p50_ms,
            r.cold_p99_ms,
            r.rss_end_mib,
            r.fds_end,
            r.disk_mib
        );
    }
    s
}
