//! Retrieval quality on a labelled known-item set: the Debian corpus loaded
//! into a fresh collection through the HTTP API (the `text` field only, as
//! `../shared/eval/README.md` asks), every query run in text, vector and
//! hybrid mode, beside `bm25s` (a standard BM25 implementation) on the same
//! texts and queries in the same run.
//!
//! Vectors for the corpus come from [`crate::corpus::vectors`] (cached); query
//! texts are embedded by the server, inside the measured latency, as a client
//! sending text would see it. Latency is client-side wall time per request over
//! loopback, one request at a time.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::common::{agent, percentile};
use crate::common::{create_collection, post};
use crate::corpus::{self, Record};

/// A known-item set loaded into Naksha: which corpus, questions and model.
#[derive(Clone, Debug, clap::Args)]
pub struct KnownItemArgs {
    /// Corpus JSONL (`id`, `text`), plain or `.zst`.
    #[arg(long, default_value = "../shared/data/debian-descriptions.jsonl.zst")]
    pub corpus: PathBuf,
    /// Folder with `queries.jsonl` and `qrels.tsv`.
    #[arg(long = "eval", default_value = "../shared/eval/debian-knownitem")]
    pub eval_dir: PathBuf,
    /// Models folder.
    #[arg(long, env = "NAKSHA_MODELS_DIR", default_value = "naksha-models")]
    pub models_dir: PathBuf,
    /// Model name.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub model: String,
    /// Records taken from the start of the corpus (queries whose record is not loaded are dropped).
    #[arg(long, default_value_t = usize::MAX)]
    pub docs: usize,
    /// Queries run (from the start of the file).
    #[arg(long, default_value_t = usize::MAX)]
    pub queries: usize,
}

/// Settings of one quality run.
#[derive(Clone, Debug)]
pub struct QualityArgs {
    /// Corpus, questions, model.
    pub set: KnownItemArgs,
    /// Skip the bm25s peer.
    pub skip_peer: bool,
}

/// A known-item set in a fresh server on loopback (stopped, and its data
/// directory removed, when this is dropped).
pub struct Loaded<S> {
    /// The records loaded.
    pub records: Vec<Record>,
    /// Questions whose record is loaded, with that record's id.
    pub queries: Vec<(String, u64)>,
    /// The server's base URL; the collection is `debian`.
    pub base: String,
    /// Seconds to load the collection over HTTP (vectors given, texts indexed).
    pub load_secs: f64,
    _server: S,
    _dir: tempfile::TempDir,
}

impl<S> std::fmt::Debug for Loaded<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("records", &self.records.len())
            .field("queries", &self.queries.len())
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Reads the set, embeds the corpus (or reads its cached vectors), starts a
/// server and loads every record (vector and `text` field) into `debian`.
pub fn load_set(set: &KnownItemArgs) -> Result<Loaded<impl Drop>> {
    let records = corpus::read(&set.corpus, set.docs)?;
    let loaded: std::collections::HashSet<u64> = records.iter().map(|r| r.id).collect();
    let queries: Vec<(String, u64)> =
        read_queries(&set.eval_dir)?.into_iter().filter(|q| loaded.contains(&q.1)).take(set.queries).collect();
    if queries.is_empty() {
        bail!("no query has its relevant record among the {} records loaded", records.len());
    }
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let (vectors, dim) = corpus::vectors(&set.models_dir, &set.model, &texts)?;
    let dir = tempfile::tempdir()?;
    let (base, server) = crate::load::start_server(dir.path(), Some(&set.models_dir))?;
    let load_secs = load(&base, &set.model, &records, &vectors, dim)?;
    Ok(Loaded { records, queries, base, load_secs, _server: server, _dir: dir })
}

/// Quality and latency of one engine and mode.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Engine and mode.
    pub name: String,
    /// Mean reciprocal rank of the relevant record in the top 10.
    pub mrr10: f64,
    /// nDCG@10 (one relevant record per query).
    pub ndcg10: f64,
    /// Recall@1, @10, @100.
    pub recall: [f64; 3],
    /// Latency p50 and p99 in ms (None for the peer, which runs in batch).
    pub latency: Option<(f64, f64)>,
}

/// The whole run.
#[derive(Clone, Debug)]
pub struct QualityReport {
    /// Records loaded.
    pub docs: usize,
    /// Queries run.
    pub queries: usize,
    /// Seconds to load the collection over HTTP (vectors given, texts indexed).
    pub load_secs: f64,
    /// One row per engine and mode.
    pub rows: Vec<Row>,
}

/// Quality figures for ranked id lists against one relevant id per query.
pub fn score(ranked: &[Vec<u64>], relevant: &[u64]) -> (f64, f64, [f64; 3]) {
    let n = relevant.len().max(1) as f64;
    let (mut mrr, mut ndcg, mut recall) = (0.0, 0.0, [0.0; 3]);
    for (list, want) in ranked.iter().zip(relevant) {
        let Some(rank) = list.iter().position(|id| id == want) else { continue };
        if rank < 10 {
            mrr += 1.0 / (rank + 1) as f64;
            ndcg += 1.0 / ((rank + 2) as f64).log2();
        }
        for (r, cut) in recall.iter_mut().zip([1, 10, 100]) {
            if rank < cut {
                *r += 1.0;
            }
        }
    }
    (mrr / n, ndcg / n, recall.map(|r| r / n))
}

/// The queries (text and relevant corpus id) of a known-item set.
pub fn read_queries(eval_dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut qrels = HashMap::new();
    for line in fs_err::read_to_string(eval_dir.join("qrels.tsv"))?.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() >= 2 {
            qrels.insert(f[0].parse::<u64>()?, f[1].parse::<u64>()?);
        }
    }
    corpus::read_jsonl(&eval_dir.join("queries.jsonl"))?
        .into_iter()
        .map(|q| {
            let qid = q["qid"].as_u64().context("query without qid")?;
            let text = q["query"].as_str().context("query without text")?.to_owned();
            Ok((text, *qrels.get(&qid).with_context(|| format!("no qrel for query {qid}"))?))
        })
        .collect()
}

/// Run the bench.
pub fn run(args: &QualityArgs) -> Result<QualityReport> {
    let set = load_set(&args.set)?;
    let (records, queries, base) = (&set.records, &set.queries, &set.base);
    let relevant: Vec<u64> = queries.iter().map(|q| q.1).collect();
    let mut rows = Vec::new();
    let modes = [
        ("Naksha text (BM25)", json!({"mode": "text"})),
        ("Naksha vector", json!({"mode": "vector"})),
        ("Naksha hybrid (RRF, k=60)", json!({"mode": "hybrid"})),
        (
            "Naksha hybrid (weighted 0.5)",
            json!({"mode": "hybrid", "fusion": {"method": "weighted", "vector_weight": 0.5}}),
        ),
    ];
    for (name, extra) in modes {
        let (ranked, mut ms) = query_all(base, queries, 100, &extra)?;
        ms.sort_by(f64::total_cmp);
        let (mrr10, ndcg10, recall) = score(&ranked, &relevant);
        let latency = Some((percentile(&ms, 0.5), percentile(&ms, 0.99)));
        rows.push(Row { name: name.into(), mrr10, ndcg10, recall, latency });
        eprintln!("{name}: MRR@10 {mrr10:.4}");
    }
    if !args.skip_peer {
        let (name, ranked) = run_peer(records, queries)?;
        let (mrr10, ndcg10, recall) = score(&ranked, &relevant);
        rows.insert(1, Row { name, mrr10, ndcg10, recall, latency: None });
    }
    Ok(QualityReport { docs: records.len(), queries: queries.len(), load_secs: set.load_secs, rows })
}

/// Create the collection and load every record (vector and `text` field) as NDJSON.
fn load(base: &str, model: &str, records: &[Record], vectors: &[f32], dim: usize) -> Result<f64> {
    let a = agent();
    let config = json!({"vectors": {"dim": dim, "metric": "cosine"}, "embed": {"model": model, "fields": ["text"]},
                        "text_fields": ["text"]});
    create_collection(&a, base, "debian", &config)?;
    let started = Instant::now();
    for (batch, vecs) in records.chunks(500).zip(vectors.chunks(500 * dim)) {
        let mut body = String::new();
        for (r, v) in batch.iter().zip(vecs.chunks_exact(dim)) {
            body.push_str(&json!({"id": r.id, "vector": v, "text": {"text": r.text}}).to_string());
            body.push('\n');
        }
        post(&a, &format!("{base}/v1/collections/debian/points"), "application/x-ndjson", body)?;
    }
    let secs = started.elapsed().as_secs_f64();
    // Let background flushes and merges finish so they do not run under the queries.
    let mut last = Value::Null;
    for _ in 0..300 {
        std::thread::sleep(Duration::from_secs(1));
        let info: Value = serde_json::from_str(
            &a.get(format!("{base}/v1/collections/debian")).call()?.into_body().read_to_string()?,
        )?;
        let now = json!([info["segments"], info["memtable_points"], info["disk_bytes"]]);
        if now == last {
            break;
        }
        last = now;
    }
    Ok(secs)
}

/// Every query, one at a time, as plain words: the top `limit` ids and the latency in ms.
pub(crate) fn query_all(
    base: &str,
    queries: &[(String, u64)],
    limit: usize,
    extra: &Value,
) -> Result<(Vec<Vec<u64>>, Vec<f64>)> {
    let a = agent();
    let url = format!("{base}/v1/collections/debian/query");
    let body = |text: &str| {
        let mut b = json!({"text": text, "syntax": "plain", "limit": limit, "with_payload": false});
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        b.to_string()
    };
    post(&a, &url, "application/json", body(&queries[0].0))?; // warm-up
    let (mut ranked, mut ms) = (Vec::with_capacity(queries.len()), Vec::with_capacity(queries.len()));
    for (text, _) in queries {
        let t = Instant::now();
        let v = post(&a, &url, "application/json", body(text))?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        let ids = v["results"].as_array().context("results")?.iter().filter_map(|h| h["id"].as_u64()).collect();
        ranked.push(ids);
    }
    Ok((ranked, ms))
}

/// bm25s through `peers/bm25_peer.py`: the top 100 corpus ids per query.
fn run_peer(records: &[Record], queries: &[(String, u64)]) -> Result<(String, Vec<Vec<u64>>)> {
    let python = crate::common::ensure_named_venv(".venv-bm25", "requirements-bm25.txt")?;
    let dir = tempfile::tempdir()?;
    let mut corpus = String::new();
    for r in records {
        corpus.push_str(&json!({"id": r.id, "text": r.text}).to_string());
        corpus.push('\n');
    }
    fs_err::write(dir.path().join("corpus.jsonl"), corpus)?;
    let qs: String = queries.iter().map(|q| serde_json::to_string(&q.0).unwrap_or_default() + "\n").collect();
    fs_err::write(dir.path().join("queries.jsonl"), qs)?;
    let out =
        Command::new(&python).arg(crate::common::bench_dir().join("peers/bm25_peer.py")).arg(dir.path()).output()?;
    if !out.status.success() {
        bail!("bm25 peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&fs_err::read(dir.path().join("results.json"))?)?;
    let ranked = v["results"]
        .as_array()
        .context("peer results")?
        .iter()
        .map(|l| l.as_array().map(|l| l.iter().filter_map(Value::as_u64).collect()).unwrap_or_default())
        .collect::<Vec<Vec<u64>>>();
    if ranked.len() != queries.len() {
        bail!("peer answered {} of {} queries", ranked.len(), queries.len());
    }
    Ok((v["engine"].as_str().unwrap_or("bm25s").to_owned(), ranked))
}

/// The report as markdown.
pub fn markdown(r: &QualityReport, args: &QualityArgs, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Retrieval quality: known-item search on the Debian descriptions\n");
    let _ = writeln!(s, "- Machine: {}", crate::common::machine());
    let _ = writeln!(
        s,
        "- Data: {} records of {} (the `text` field only), {} queries of {}",
        r.docs,
        args.set.corpus.display(),
        r.queries,
        args.set.eval_dir.display()
    );
    let _ = writeln!(
        s,
        "- Naksha: one collection over HTTP on loopback, loaded in {:.1} s ({:.0} points/s, vectors precomputed with {}); \
         queries one at a time, `limit` 100, query text embedded by the server in vector and hybrid modes; \
         latency is client-side wall time",
        r.load_secs,
        r.docs as f64 / r.load_secs.max(1e-9),
        args.set.model
    );
    let _ = writeln!(s, "- Command: `{command}`\n");
    let _ = writeln!(s, "| engine / mode | MRR@10 | nDCG@10 | R@1 | R@10 | R@100 | p50 ms | p99 ms |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in &r.rows {
        let (p50, p99) =
            row.latency.map_or(("–".into(), "–".into()), |(a, b)| (format!("{a:.2}"), format!("{b:.2}")));
        let _ = writeln!(
            s,
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {p50} | {p99} |",
            row.name, row.mrr10, row.ndcg10, row.recall[0], row.recall[1], row.recall[2]
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        // Ranks 1, 3, 11 and missing.
        let ranked =
            vec![vec![7, 1], vec![1, 2, 7], (0..11).rev().map(|i| if i == 0 { 7 } else { i + 100 }).collect(), vec![]];
        let (mrr, ndcg, recall) = score(&ranked, &[7, 7, 7, 7]);
        assert!((mrr - (1.0 + 1.0 / 3.0) / 4.0).abs() < 1e-12);
        assert!((ndcg - (1.0 + 1.0 / 4f64.log2()) / 4.0).abs() < 1e-12);
        assert_eq!(recall, [0.25, 0.5, 0.75]);
    }
}
