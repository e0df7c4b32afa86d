//! Markdown reports that name the machine, data, parameters and command.

use std::fmt::Write;

use crate::common::machine;
use crate::curve::ef_table;
use crate::curve::{qps_at, AnnReport, CurvePoint};

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
