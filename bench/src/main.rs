//! `naksha-bench`: run a benchmark and write its markdown report.
#![allow(clippy::print_stdout)] // a CLI: the report goes to stdout

use std::path::PathBuf;

// Large, short-lived tensors: glibc's malloc hands them out as fresh mmaps, so
// every forward pass page-faults; mimalloc reuses memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use naksha_bench::quality::KnownItemArgs;
use naksha_bench::{ann, datasets, report};
use naksha_index::metric::Metric;

#[derive(Parser)]
#[command(name = "naksha-bench", about = "Naksha benchmarks, side by side with peers, in one run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run, so the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Recall@k vs QPS sweep of Naksha's HNSW beside hnsw_rs.
    Ann {
        /// `synthetic` (seeded clustered vectors), `fvecs` (with --base and --query-file) or
        /// `debian` (the corpus and its queries as model vectors, cosine; see --corpus).
        #[arg(long, default_value = "synthetic")]
        dataset: String,
        /// Base vectors (synthetic), or a limit on those read (fvecs, debian).
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Queries (synthetic), or a limit on those read (debian).
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// Corpus (debian).
        #[arg(long, default_value = "../shared/data/debian-descriptions.jsonl.zst")]
        corpus: PathBuf,
        /// Folder with queries.jsonl (debian).
        #[arg(long, default_value = "../shared/eval/debian-knownitem")]
        eval: PathBuf,
        /// Models folder (debian).
        #[arg(long, env = "NAKSHA_MODELS_DIR", default_value = "naksha-models")]
        models_dir: PathBuf,
        /// Model (debian).
        #[arg(long, default_value = "all-minilm-l6-v2")]
        model: String,
        /// Dimension (synthetic).
        #[arg(long, default_value_t = 128)]
        dim: usize,
        /// cosine | dot | l2.
        #[arg(long, default_value = "l2")]
        metric: String,
        /// Base vectors file (fvecs).
        #[arg(long)]
        base: Option<PathBuf>,
        /// Query vectors file (fvecs).
        #[arg(long)]
        query_file: Option<PathBuf>,
        #[arg(long, default_value_t = 16)]
        m: usize,
        #[arg(long, default_value_t = 200)]
        ef_construction: usize,
        /// Comma-separated ef values.
        #[arg(long, default_value = "10,16,24,32,48,64,96,128,192,256,400")]
        efs: String,
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Also run Naksha with int8 quantization.
        #[arg(long)]
        int8: bool,
        /// Run Naksha only (no peer), e.g. to compare two Naksha builds.
        #[arg(long)]
        skip_peer: bool,
        /// Python peers too, comma-separated: hnswlib,faiss (creates bench/.venv).
        /// hnsw_rs and usearch always run in-process unless --skip-peer.
        #[arg(long, default_value = "")]
        peers: String,
        /// Filtered sweeps too: percentages of the points each filter admits, comma-separated
        /// (empty for none).
        #[arg(long, default_value = "10,1")]
        filters: String,
        /// Comma-separated ef values of the filtered sweeps (a filtered walk visits about
        /// 1/selectivity times more nodes per unit of ef).
        #[arg(long, default_value = "10,16,24,32,48,64,96,128")]
        filter_efs: String,
        /// Seed of the filters' per-point buckets.
        #[arg(long, default_value_t = 7)]
        filter_seed: u64,
        /// With --out, skip the PNG plot (which needs bench/.venv-plot, made from PyPI on first use).
        #[arg(long)]
        no_plot: bool,
        /// Build threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Seed (synthetic).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Write the markdown report here (also printed).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Concurrent HTTP clients on loopback for a bounded time: QPS and p50/p99 for search and upsert.
    Load {
        /// A running server (loopback only); default: start one in-process on a temporary data directory.
        #[arg(long)]
        url: Option<String>,
        /// Points loaded before the search phase.
        #[arg(long, default_value_t = 20_000)]
        points: usize,
        #[arg(long, default_value_t = 128)]
        dim: usize,
        /// Comma-separated client counts.
        #[arg(long, default_value = "1,8,32")]
        clients: String,
        /// Seconds per cell.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Points per upsert request.
        #[arg(long, default_value_t = 10)]
        upsert_batch: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A bounded mixed workload (upserts, deletes, filtered deletes, queries, flushes, merges) against an
    /// in-process server on loopback, sampling RSS, open files and latency; with --out, a JSON and a PNG beside it.
    Soak {
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 1800.0)]
        seconds: f64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 15.0)]
        sample_seconds: f64,
        #[arg(long, default_value_t = 64)]
        dim: usize,
        /// Ids live in 0..window (upserts replace, deletes remove).
        #[arg(long, default_value_t = 100_000)]
        window: u64,
        /// The server's flush threshold (small: flushes and merges keep running).
        #[arg(long, default_value_t = 5_000)]
        flush_points: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Many small tenants on one node (each with a collection and a key): set-up time, start-up time,
    /// RSS and open files of the server, query latency for hot and cold tenants.
    Tenants {
        /// Comma-separated tenant counts (a fresh data directory each).
        #[arg(long, default_value = "1000,10000")]
        counts: String,
        /// Points per tenant.
        #[arg(long, default_value_t = 200)]
        points: usize,
        #[arg(long, default_value_t = 384)]
        dim: usize,
        /// The server's tenants.max_open.
        #[arg(long, default_value_t = 256)]
        max_open: usize,
        /// Hot working set.
        #[arg(long, default_value_t = 50)]
        hot: usize,
        /// Queries in the hot pass.
        #[arg(long, default_value_t = 2000)]
        hot_queries: usize,
        /// Cold tenants, queried once each.
        #[arg(long, default_value_t = 500)]
        cold: usize,
        /// Parallel clients during set-up.
        #[arg(long, default_value_t = 4)]
        setup_clients: usize,
        /// Where the data directories go (default: a temporary directory).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The naksha server, for benchmarks that need it in a process of its own (settings from NAKSHA_* variables).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        http_addr: std::net::SocketAddr,
    },
    /// Snapshot and restore MB/s beside cp -r and tar on the same collection.
    Snapshot {
        #[arg(long, default_value_t = 500_000)]
        points: usize,
        #[arg(long, default_value_t = 128)]
        dim: usize,
        /// Runs per timing (the median is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Scratch folder (on the file system to measure).
        #[arg(long, default_value = "target")]
        dir: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Durable ingest throughput (points/s) through the embedded API and HTTP NDJSON.
    Ingest {
        /// Points written per cell.
        #[arg(long, default_value_t = 200_000)]
        points: usize,
        #[arg(long, default_value_t = 128)]
        dim: usize,
        /// Points per batch (request).
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Comma-separated writer counts.
        #[arg(long, default_value = "1,4")]
        writers: String,
        /// Instead: ingestion jobs from these sources (comma-separated: parquet, s3, postgres), with
        /// the vector given (`--points` × `--dim`) and embedded in the server (`--texts` corpus records).
        #[arg(long)]
        source: Option<String>,
        /// Texts embedded per job (with --source).
        #[arg(long, default_value_t = 2000)]
        texts: usize,
        /// JSONL (or .jsonl.zst) corpus of the texts (with --source).
        #[arg(long, default_value = "../shared/data/debian-descriptions.jsonl.zst")]
        corpus: PathBuf,
        #[arg(long, env = "NAKSHA_MODELS_DIR", default_value = "naksha-models")]
        models_dir: PathBuf,
        /// Skip the Python pipeline (with --source).
        #[arg(long)]
        skip_peer: bool,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Embedding throughput beside sentence-transformers on the same texts.
    Embed {
        /// JSONL (or .jsonl.zst) with a `text` field per line.
        #[arg(long, default_value = "../shared/data/debian-descriptions.jsonl.zst")]
        corpus: PathBuf,
        /// Texts taken from the start of the corpus.
        #[arg(long, default_value_t = 2000)]
        docs: usize,
        #[arg(long, env = "NAKSHA_MODELS_DIR", default_value = "naksha-models")]
        models_dir: PathBuf,
        #[arg(long, default_value = "all-minilm-l6-v2")]
        model: String,
        #[arg(long)]
        skip_peer: bool,
        /// Timed passes per side, alternating Naksha and the peer; the median is reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Retrieval quality (MRR@10, nDCG@10, recall) and latency of text, vector and hybrid search, beside bm25s.
    Quality {
        #[command(flatten)]
        set: KnownItemArgs,
        /// Skip the bm25s peer (creates bench/.venv-bm25 otherwise).
        #[arg(long)]
        skip_peer: bool,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Grounded answers on the known-item set: how often the right record is cited, latency, context tokens.
    Rag {
        #[command(flatten)]
        set: KnownItemArgs,
        /// Comma-separated context budgets (max_context_tokens), one row each.
        #[arg(long, default_value = "256,1500")]
        budgets: String,
        /// Context passages per answer.
        #[arg(long, default_value_t = 8)]
        limit: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Embed the corpus with the local model and cache the vectors in bench/.cache.
    CorpusVectors {
        #[arg(long, default_value = "../shared/data/debian-descriptions.jsonl.zst")]
        corpus: PathBuf,
        /// Records taken from the start of the corpus.
        #[arg(long, default_value_t = usize::MAX)]
        docs: usize,
        #[arg(long, env = "NAKSHA_MODELS_DIR", default_value = "naksha-models")]
        models_dir: PathBuf,
        #[arg(long, default_value = "all-minilm-l6-v2")]
        model: String,
    },
}

fn metric(s: &str) -> Result<Metric> {
    Ok(match s {
        "cosine" => Metric::Cosine,
        "dot" => Metric::Dot,
        "l2" => Metric::L2,
        other => bail!("unknown metric {other:?} (cosine, dot or l2)"),
    })
}

/// A comma-separated option's values (empty entries skipped), or an error naming `--{name}`.
fn list<T: std::str::FromStr>(name: &str, s: &str) -> Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    s.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().map_err(|e| anyhow::anyhow!("--{name}: {v:?}: {e}")))
        .collect()
}

/// Prints the report and writes it to `out` when given.
fn emit(md: &str, out: Option<PathBuf>) -> Result<()> {
    println!("{md}");
    if let Some(path) = out {
        fs_err::write(&path, md)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match Cli::parse().command {
        Command::Ann {
            dataset,
            n,
            queries,
            corpus,
            eval,
            models_dir,
            model,
            dim,
            metric: m,
            base,
            query_file,
            m: links,
            ef_construction,
            efs,
            k,
            int8,
            skip_peer,
            peers,
            filters,
            filter_efs,
            filter_seed,
            no_plot,
            threads,
            seed,
            out,
        } => {
            if let Some(t) = threads {
                rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
            }
            let metric = metric(&m)?;
            let ds = match dataset.as_str() {
                "synthetic" => datasets::synthetic(n, queries, dim, metric, seed),
                "fvecs" => match (base, query_file) {
                    (Some(b), Some(q)) => datasets::from_fvecs(&b, &q, metric, Some(n))?,
                    _ => bail!("--dataset fvecs needs --base and --query-file"),
                },
                "debian" => {
                    let eval_dir = eval;
                    datasets::debian(&KnownItemArgs { corpus, eval_dir, models_dir, model, docs: n, queries })?
                }
                other => bail!("unknown dataset {other:?}"),
            };
            let (efs, filter_efs) = (list("efs", &efs)?, list("filter-efs", &filter_efs)?);
            let python_peers = list("peers", &peers)?;
            let filter_percents: Vec<u32> = list("filters", &filters)?;
            if filter_percents.iter().any(|&p| p == 0 || p > 100) {
                bail!("--filters takes percentages from 1 to 100");
            }
            let args = naksha_bench::curve::AnnArgs {
                m: links,
                ef_construction,
                efs,
                k,
                int8,
                skip_peer,
                python_peers,
                filter_percents,
                filter_efs,
                filter_seed,
            };
            let r = ann::run(&ds, &args)?;
            emit(&report::ann_markdown(&r, &command), out.clone())?;
            if let Some(md) = out {
                let json = md.with_extension("json");
                fs_err::write(&json, serde_json::to_string_pretty(&r)?)?;
                eprintln!("wrote {}", json.display());
                if !no_plot {
                    let png = naksha_bench::plot::ann(&json)?;
                    eprintln!("wrote {}", png.display());
                }
            }
        }
        Command::Load { url, points, dim, clients, seconds, upsert_batch, out } => {
            let clients = list("clients", &clients)?;
            let args = naksha_bench::load::LoadArgs { points, dim, clients, seconds, upsert_batch };
            let dir = tempfile::tempdir()?;
            let (base, _server) = match url {
                Some(u) => (u, None),
                None => {
                    let (u, guard) = naksha_bench::load::start_server(dir.path(), None)?;
                    (u, Some(guard))
                }
            };
            let cells = naksha_bench::load::run(&base, &args)?;
            emit(&naksha_bench::load::markdown(&cells, &args, &command), out)?;
        }
        Command::Soak { seconds, sample_seconds, dim, window, flush_points, out } => {
            let args = naksha_bench::soak::SoakArgs { seconds, sample_seconds, dim, window, flush_points };
            let dir = tempfile::tempdir()?;
            let (base, server) = naksha_bench::load::start_server_with(dir.path(), None, |s| {
                s.storage.flush_points = flush_points;
            })?;
            let samples = naksha_bench::soak::run(&base, &args)?;
            drop(server);
            emit(&naksha_bench::soak::markdown(&samples, &args, &command), out.clone())?;
            if let Some(out) = out {
                let json = out.with_extension("json");
                fs_err::write(
                    &json,
                    serde_json::to_vec_pretty(&serde_json::json!({"args": args, "samples": samples}))?,
                )?;
                let png = naksha_bench::plot::soak(&json)?;
                eprintln!("wrote {}", png.display());
            }
        }
        Command::Tenants { counts, points, dim, max_open, hot, hot_queries, cold, setup_clients, work_dir, out } => {
            let args = naksha_bench::tenants::TenantsArgs {
                counts: list("counts", &counts)?,
                points,
                dim,
                max_open,
                hot,
                hot_queries,
                cold,
                setup_clients,
                server_exe: std::env::current_exe()?,
            };
            let tmp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| tmp.path().to_owned());
            let rows = naksha_bench::tenants::run(&args, &work)?;
            emit(&naksha_bench::tenants::markdown(&rows, &args, &command), out)?;
        }
        Command::Serve { data_dir, http_addr } => {
            let mut settings = naksha_server::settings::Settings::load(None, std::env::vars())?;
            settings.storage.data_dir = data_dir;
            settings.server.http_addr = http_addr;
            settings.server.grpc_addr = "127.0.0.1:0".parse()?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(naksha_server::run(settings, naksha_server::shutdown_signal()))?;
        }
        Command::Ingest { source: Some(sources), points, dim, texts, corpus, models_dir, skip_peer, out, .. } => {
            let records = naksha_bench::corpus::read(&corpus, texts)?;
            let texts = records.into_iter().map(|r| format!("{}: {}", r.title, r.text)).collect();
            let args = naksha_bench::sources::SourcesArgs {
                sources: sources.split(',').map(|s| s.trim().to_owned()).collect(),
                points,
                dim,
                texts,
                models_dir,
                server_exe: std::env::current_exe()?,
                skip_peer,
            };
            let report = naksha_bench::sources::run(&args)?;
            emit(&naksha_bench::sources::markdown(&report, &args, &command), out)?;
        }
        Command::Snapshot { points, dim, reps, dir, out } => {
            let args = naksha_bench::snapshots::SnapshotArgs { points, dim, reps, dir };
            let report = naksha_bench::snapshots::run(&args)?;
            emit(&naksha_bench::snapshots::markdown(&report, &args, &command), out)?;
        }
        Command::Ingest { points, dim, batch, writers, out, .. } => {
            let writers = list("writers", &writers)?;
            let args = naksha_bench::ingest::IngestArgs { points, dim, batch, writers };
            let cells = naksha_bench::ingest::run(&args)?;
            emit(&naksha_bench::ingest::markdown(&cells, &args, &command), out)?;
        }
        Command::Embed { corpus, docs, models_dir, model, skip_peer, rounds, out } => {
            let texts = naksha_bench::embed::read_texts(&corpus, docs)?;
            let source = format!("the first {} records of {}", texts.len(), corpus.display());
            let args = naksha_bench::embed::EmbedArgs { models_dir, model, texts, source, skip_peer, rounds };
            let r = naksha_bench::embed::run(&args)?;
            emit(&naksha_bench::embed::markdown(&r, &args, &command), out)?;
        }
        Command::Quality { set, skip_peer, out } => {
            let args = naksha_bench::quality::QualityArgs { set, skip_peer };
            let r = naksha_bench::quality::run(&args)?;
            emit(&naksha_bench::quality::markdown(&r, &args, &command), out)?;
        }
        Command::Rag { set, budgets, limit, out } => {
            let budgets = list("budgets", &budgets)?;
            let args = naksha_bench::rag::RagArgs { set, budgets, limit };
            let r = naksha_bench::rag::run(&args)?;
            emit(&naksha_bench::rag::markdown(&r, &args, &command), out)?;
        }
        Command::CorpusVectors { corpus, docs, models_dir, model } => {
            let records = naksha_bench::corpus::read(&corpus, docs)?;
            let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
            naksha_bench::corpus::vectors(&models_dir, &model, &texts)?;
            println!("{}", naksha_bench::corpus::cache_path(&model, &texts).display());
        }
    }
    Ok(())
}
