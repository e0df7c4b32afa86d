//! Prometheus metrics in the text exposition format: request counts and
//! latency histograms per route and status, collection gauges, engine
//! counters and process memory.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use naksha_query::HealthStatus;

use crate::tenancy::Tenancy;
use parking_lot::Mutex; // no poisoning: a panicking handler cannot break metrics

/// Latency bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Snapshot and backup operations of one kind and outcome.
#[derive(Debug, Default, Clone, Copy)]
struct SnapshotOps {
    count: u64,
    bytes: u64,
    seconds: f64,
}

/// Request metrics, keyed by (method, route, status), and snapshot operations.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    snapshots: Mutex<BTreeMap<(&'static str, &'static str), SnapshotOps>>,
}

impl Metrics {
    /// Record a snapshot operation (`create`, `restore`, `upload`, `download`, `s3_download`).
    pub fn snapshot_op(&self, op: &'static str, ok: bool, bytes: u64, seconds: f64) {
        let mut map = self.snapshots.lock();
        let e = map.entry((op, if ok { "ok" } else { "error" })).or_default();
        e.count += 1;
        e.bytes += bytes;
        e.seconds += seconds;
    }

    fn render_snapshots(&self, s: &mut String) {
        let map = self.snapshots.lock().clone();
        type Series = (&'static str, &'static str, fn(&SnapshotOps) -> f64);
        let series: [Series; 3] = [
            ("naksha_snapshot_operations_total", "Snapshot, restore and backup operations by op and outcome.", |o| {
                o.count as f64
            }),
            ("naksha_snapshot_bytes_total", "Archive bytes written, read or sent, by op and outcome.", |o| {
                o.bytes as f64
            }),
            ("naksha_snapshot_seconds_total", "Time spent in snapshot operations, by op and outcome.", |o| o.seconds),
        ];
        for (metric, help, get) in series {
            let _ = writeln!(s, "# HELP {metric} {help}\n# TYPE {metric} counter");
            for ((op, outcome), o) in &map {
                let _ = writeln!(s, "{metric}{{op=\"{op}\",outcome=\"{outcome}\"}} {}", get(o));
            }
        }
    }

    /// Record one request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut map = self.requests.lock();
        let h = map.entry((method.to_owned(), route.to_owned(), status)).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Render everything, including gauges of the default tenant's and every
    /// open tenant's collections (label `tenant`) and per-tenant counters.
    pub fn render(&self, tenancy: Option<&Tenancy>, jobs: Option<&naksha_ingest::Jobs>) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP naksha_http_requests_total HTTP requests by method, route and status.");
        let _ = writeln!(s, "# TYPE naksha_http_requests_total counter");
        let map = self.requests.lock().clone();
        for ((m, r, st), h) in &map {
            let _ =
                writeln!(s, "naksha_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{st}\"}} {}", h.count);
        }
        let _ = writeln!(s, "# HELP naksha_http_request_duration_seconds HTTP request latency.");
        let _ = writeln!(s, "# TYPE naksha_http_request_duration_seconds histogram");
        for ((m, r, st), h) in &map {
            let labels = format!("method=\"{m}\",route=\"{r}\",status=\"{st}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ =
                    writeln!(s, "naksha_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}", h.buckets[i]);
            }
            let _ = writeln!(s, "naksha_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(s, "naksha_http_request_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(s, "naksha_http_request_duration_seconds_count{{{labels}}} {}", h.count);
        }
        if let Some(t) = tenancy {
            let mut dbs = vec![(crate::tenancy::registry::DEFAULT_TENANT.to_owned(), t.pool.root().clone())];
            dbs.extend(t.pool.open_databases());
            let gauges: [(&str, &str, &str); 6] = [
                ("naksha_collection_points", "gauge", "Live points per collection."),
                ("naksha_collection_segments", "gauge", "Immutable segments per collection."),
                ("naksha_collection_wal_bytes", "gauge", "Write-ahead log bytes per collection."),
                ("naksha_collection_disk_bytes", "gauge", "Bytes on disk per collection."),
                ("naksha_flush_seconds_total", "counter", "Time spent flushing memtables."),
                ("naksha_merge_seconds_total", "counter", "Time spent merging segments."),
            ];
            let mut rows: Vec<[f64; 6]> = Vec::new();
            let mut names = Vec::new();
            let mut counts: Vec<(u64, u64)> = Vec::new();
            let mut statuses = Vec::new();
            for (tenant, name, c) in
                dbs.iter().flat_map(|(t, db)| db.collections().into_iter().map(move |(n, c)| (t, n, c)))
            {
                let name = format!("tenant=\"{tenant}\",collection=\"{name}\"");
                let i = c.info();
                let m = c.metrics();
                rows.push([
                    i.points as f64,
                    i.segments as f64,
                    i.wal_bytes as f64,
                    i.disk_bytes as f64,
                    m.flush_micros.load(Relaxed) as f64 / 1e6,
                    m.merge_micros.load(Relaxed) as f64 / 1e6,
                ]);
                counts.push((m.flushes.load(Relaxed), m.merges.load(Relaxed)));
                statuses.push(i.status);
                names.push(name);
            }
            for (g, (metric, kind, help)) in gauges.iter().enumerate() {
                let _ = writeln!(s, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
                for (name, row) in names.iter().zip(&rows) {
                    let _ = writeln!(s, "{metric}{{{name}}} {}", row[g]);
                }
            }
            let _ = writeln!(s, "# HELP naksha_flushes_total Completed flushes.\n# TYPE naksha_flushes_total counter");
            for (name, (f, _)) in names.iter().zip(&counts) {
                let _ = writeln!(s, "naksha_flushes_total{{{name}}} {f}");
            }
            let _ = writeln!(s, "# HELP naksha_merges_total Completed merges.\n# TYPE naksha_merges_total counter");
            for (name, (_, m)) in names.iter().zip(&counts) {
                let _ = writeln!(s, "naksha_merges_total{{{name}}} {m}");
            }
            let _ = writeln!(
                s,
                "# HELP naksha_collection_status 1 for the collection's current status (ok, degraded, read_only).\n# TYPE naksha_collection_status gauge"
            );
            for (name, status) in names.iter().zip(&statuses) {
                for (label, st) in [
                    ("ok", HealthStatus::Ok),
                    ("degraded", HealthStatus::Degraded),
                    ("read_only", HealthStatus::ReadOnly),
                ] {
                    let _ = writeln!(
                        s,
                        "naksha_collection_status{{{name},status=\"{label}\"}} {}",
                        u8::from(*status == st)
                    );
                }
            }
        }
        if let Some(t) = tenancy {
            render_tenants(&mut s, t);
        }
        if let Some(j) = jobs {
            render_jobs(&mut s, j);
        }
        self.render_snapshots(&mut s);
        let rss = fs_err::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |p| p * 4096);
        let _ = writeln!(s, "# HELP process_resident_memory_bytes Resident memory size in bytes.");
        let _ = writeln!(s, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}");
        s
    }
}

/// Per-tenant counters and the tenant pool's size.
fn render_tenants(s: &mut String, t: &Tenancy) {
    let _ = writeln!(s, "# HELP naksha_tenants Tenants (besides the default one).\n# TYPE naksha_tenants gauge");
    let _ = writeln!(s, "naksha_tenants {}", t.registry.tenant_count());
    let _ = writeln!(s, "# HELP naksha_tenants_open Tenant databases open now.\n# TYPE naksha_tenants_open gauge");
    let _ = writeln!(s, "naksha_tenants_open {}", t.pool.open_count());
    let counters = t.limits.all_counters();
    type Series = (&'static str, &'static str, fn(&crate::tenancy::limits::Counters) -> u64);
    let series: [Series; 4] = [
        ("naksha_tenant_requests_total", "Authorised requests per tenant.", |c| c.requests),
        ("naksha_tenant_rate_limited_total", "Requests refused with rate_limited per tenant.", |c| c.rate_limited),
        ("naksha_tenant_quota_exceeded_total", "Requests refused with quota_exceeded per tenant.", |c| {
            c.quota_exceeded
        }),
        ("naksha_tenant_embed_tokens_total", "Tokens embedded per tenant.", |c| c.embed_tokens),
    ];
    for (metric, help, get) in series {
        let _ = writeln!(s, "# HELP {metric} {help}\n# TYPE {metric} counter");
        for (tenant, c) in &counters {
            let _ = writeln!(s, "{metric}{{tenant=\"{tenant}\"}} {}", get(c));
        }
    }
}

/// Jobs by status, and per-tenant ingestion counters.
fn render_jobs(s: &mut String, jobs: &naksha_ingest::Jobs) {
    let (by_status, totals) = jobs.stats();
    let _ = writeln!(s, "# HELP naksha_jobs Ingestion jobs by status.\n# TYPE naksha_jobs gauge");
    for (status, n) in by_status {
        let _ = writeln!(s, "naksha_jobs{{status=\"{status}\"}} {n}");
    }
    type Series = (&'static str, &'static str, fn(&naksha_ingest::runner::Totals) -> u64);
    let series: [Series; 4] = [
        ("naksha_job_items_read_total", "Items ingestion jobs read, per tenant.", |t| t.read),
        ("naksha_job_points_written_total", "Points ingestion jobs wrote, per tenant.", |t| t.written),
        ("naksha_job_items_failed_total", "Items ingestion jobs set aside as errors, per tenant.", |t| t.failed),
        ("naksha_job_retries_total", "Transient failures ingestion jobs retried, per tenant.", |t| t.retries),
    ];
    for (metric, help, get) in series {
        let _ = writeln!(s, "# HELP {metric} {help}\n# TYPE {metric} counter");
        for (tenant, t) in &totals {
            let _ = writeln!(s, "{metric}{{tenant=\"{tenant}\"}} {}", get(t));
        }
    }
}
