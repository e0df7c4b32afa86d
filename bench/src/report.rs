//! Markdown reports that name the machine, data, parameters and command.

use std::fmt::Write;

use crate::ann::{qps_at, AnnReport, CurvePoint};

/// CPU model and core count of this machine.
pub fn machine() -> String {
    let cpu = fs_err::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, kernels: {}", naksha_index::distance::active().name)
}

/// A progress bar for `len` steps of long bench work (hidden when stderr is not a terminal).
pub fn progress(len: usize, msg: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64).with_message(msg);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed_precise} < {eta_precise}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
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

/// Render an ANN sweep as markdown.
pub fn ann_markdown(r: &AnnReport, command: &str) -> String {
    let mut s = String::new();
    let a = &r.args;
    let _ = writeln!(s, "### ANN sweep: {}\n", r.dataset);
    let _ = writeln!(
        s,
        "- data: {} vectors, dim {}, metric {:?}, {} queries (held out), k = {}\n- index: m = {}, ef_construction = {}, {} build threads; queries one at a time on one thread\n- machine: {}\n- command: `{command}`\n",
        r.n, r.dim, r.metric, r.queries, a.k, a.m, a.ef_construction, r.threads, machine()
    );
    let _ = writeln!(s, "| engine | build s | memory MiB (RSS growth) | QPS @ recall 0.95 | QPS @ recall 0.99 |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    let fmt = |q: Option<f64>| q.map_or("not reached".to_owned(), |q| format!("{q:.0}"));
    for e in &r.engines {
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.1} | {} | {} |",
            e.name,
            e.build_secs,
            e.rss_bytes as f64 / (1 << 20) as f64,
            fmt(qps_at(&e.curve, 0.95)),
            fmt(qps_at(&e.curve, 0.99))
        );
    }
    let _ = writeln!(s, "\nRaw vectors + Naksha graph links: {:.1} MiB.\n", r.raw_plus_links as f64 / (1 << 20) as f64);
    if let Some(n) = r.engines.iter().find(|e| e.name == "naksha") {
        for p in r.engines.iter().filter(|e| !e.name.starts_with("naksha")) {
            let _ = writeln!(s, "Ratios, naksha / {} (same run):\n", p.name);
            for target in [0.95, 0.99] {
                match (qps_at(&n.curve, target), qps_at(&p.curve, target)) {
                    (Some(a), Some(b)) => {
                        let _ = writeln!(s, "- QPS at recall {target}: **{:.2}×**", a / b);
                    }
                    _ => {
                        let _ = writeln!(s, "- QPS at recall {target}: not reached by both");
                    }
                }
            }
            let _ = writeln!(s, "- build time: **{:.2}×**\n", n.build_secs / p.build_secs);
        }
    }
    let curves: Vec<(&str, &[CurvePoint])> = r.engines.iter().map(|e| (e.name.as_str(), &e.curve[..])).collect();
    s.push_str(&ef_table(&curves, &a.efs));
    if !r.filtered.is_empty() {
        s.push('\n');
        s.push_str(&crate::filtered::markdown(&r.filtered, r.n, &a.filter_efs));
    }
    s
}
