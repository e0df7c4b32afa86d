//! Embedding throughput: Naksha's CPU encoder beside sentence-transformers
//! (PyTorch, CPU) on the same texts, same machine, same run.
//!
//! Naksha runs twice: on its default device (`cpu`: 16-bit integer matmuls on
//! AVX2 CPUs without AVX-512) and on `cpu-f32` (every matmul in f32). Every side
//! gets a warm-up pass, then embeds every text once per round; rounds
//! alternate the sides back to back, so drift in a shared machine's speed hits
//! all of them, and each side's median round is reported. The report gives
//! docs/s and tokens/s (tokens after truncation, special tokens included, as
//! the model sees them), the ratio to the peer, and how closely each Naksha
//! side's vectors agree with the peer's on this set (mean and minimum cosine).

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use naksha_embed::{DeviceKind, Embedder, Models};

/// Settings of one run.
#[derive(Clone, Debug)]
pub struct EmbedArgs {
    /// The models folder and model name.
    pub models_dir: PathBuf,
    /// Model name.
    pub model: String,
    /// Texts to embed.
    pub texts: Vec<String>,
    /// Where the texts came from (for the report).
    pub source: String,
    /// Skip sentence-transformers.
    pub skip_peer: bool,
    /// Timed passes per side (at least 1), alternating Naksha and the peer.
    pub rounds: usize,
}

/// One engine's timing.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbedRun {
    /// Engine and settings.
    pub engine: String,
    /// Seconds for all texts (after warm-up): the median round.
    pub secs: f64,
    /// Seconds of each round, in order.
    pub rounds: Vec<f64>,
    /// Mean and minimum cosine between this side's vectors and the peer's
    /// (Naksha's sides, when the peer ran).
    pub agreement: Option<(f64, f64)>,
}

impl EmbedRun {
    fn new(engine: String, rounds: Vec<f64>) -> Self {
        let mut sorted = rounds.clone();
        sorted.sort_by(f64::total_cmp);
        Self { engine, secs: sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN), rounds, agreement: None }
    }
}

/// Every side's results.
#[derive(Clone, Debug)]
pub struct EmbedReport {
    /// Texts.
    pub docs: usize,
    /// Tokens the model saw.
    pub tokens: usize,
    /// Naksha's sides: the default device, then `cpu-f32`.
    pub runs: Vec<EmbedRun>,
    /// The peer, if it ran.
    pub peer: Option<EmbedRun>,
}

/// One Naksha side while the rounds run.
struct Side {
    model: Arc<Embedder>,
    secs: Vec<f64>,
    vectors: Vec<Vec<f32>>,
}

/// The `text` field of the first `limit` records of a Debian-descriptions JSONL
/// file, plain or `.zst`.
pub fn read_texts(path: &Path, limit: usize) -> Result<Vec<String>> {
    Ok(crate::corpus::read(path, limit)?.into_iter().map(|r| r.text).collect())
}

/// Run Naksha's two CPU sides (and the peer unless skipped).
pub fn run(args: &EmbedArgs) -> Result<EmbedReport> {
    let refs: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let mut sides = Vec::new();
    for device in [DeviceKind::Cpu, DeviceKind::CpuF32] {
        let model = Models::open(&args.models_dir, device)?.get(&args.model)?;
        model.embed(&refs[..refs.len().min(64)])?;
        sides.push(Side { model, secs: vec![], vectors: vec![] });
    }
    let tokens = sides[0].model.token_counts(&refs)?.iter().sum();
    let dim = sides[0].model.dim();
    let (mut theirs, mut peer_secs, mut peer_engine) = (None, vec![], None);
    for _ in 0..args.rounds.max(1) {
        for side in &mut sides {
            let t = Instant::now();
            side.vectors = side.model.embed(&refs)?;
            side.secs.push(t.elapsed().as_secs_f64());
        }
        if !args.skip_peer {
            let (engine, secs, vectors) = run_peer(args, dim)?;
            peer_secs.push(secs);
            (peer_engine, theirs) = (Some(engine), Some(vectors));
        }
    }
    let threads = rayon::current_num_threads();
    let runs = sides
        .into_iter()
        .map(|side| {
            let info = side.model.info();
            let engine = format!(
                "Naksha (own CPU encoder, device {}: {} matmuls, {threads} threads, packed length-sorted batches)",
                info.device,
                side.model.matmul_precision()
            );
            let mut run = EmbedRun::new(engine, side.secs);
            if let Some(theirs) = &theirs {
                let cos: Vec<f64> =
                    side.vectors.iter().zip(theirs.chunks_exact(dim)).map(|(a, b)| cosine(a, b)).collect();
                let mean = cos.iter().sum::<f64>() / cos.len().max(1) as f64;
                run.agreement = Some((mean, cos.iter().copied().fold(f64::INFINITY, f64::min)));
            }
            run
        })
        .collect();
    let peer = peer_engine.map(|engine| EmbedRun::new(engine, peer_secs));
    Ok(EmbedReport { docs: refs.len(), tokens, runs, peer })
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

/// One timed pass of the peer: its engine label, seconds and vectors.
fn run_peer(args: &EmbedArgs, dim: usize) -> Result<(String, f64, Vec<f32>)> {
    let python = crate::common::ensure_named_venv(".venv-embed", "requirements-embed.txt")?;
    let dir = tempfile::tempdir()?;
    let texts = dir.path().join("texts.jsonl");
    let mut body = String::new();
    for t in &args.texts {
        body.push_str(&serde_json::to_string(t)?);
        body.push('\n');
    }
    fs_err::write(&texts, body)?;
    let vectors = dir.path().join("vectors.f32");
    let out = Command::new(&python)
        .arg(crate::common::bench_dir().join("peers/embed_peer.py"))
        .arg("--model")
        .arg(args.models_dir.join(&args.model))
        .arg("--texts")
        .arg(&texts)
        .arg("--out")
        .arg(&vectors)
        .env("HF_HUB_OFFLINE", "1")
        .output()?;
    if !out.status.success() {
        bail!("embed peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8(out.stdout)?;
    let v: serde_json::Value = serde_json::from_str(line.lines().last().unwrap_or_default())?;
    let raw = fs_err::read(&vectors)?;
    let floats: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if floats.len() != args.texts.len() * dim {
        bail!("peer wrote {} floats, expected {}", floats.len(), args.texts.len() * dim);
    }
    let engine = v["engine"].as_str().unwrap_or("sentence-transformers").to_owned();
    Ok((engine, v["secs"].as_f64().context("peer timing")?, floats))
}

/// The report as markdown.
pub fn markdown(r: &EmbedReport, args: &EmbedArgs, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Embedding throughput: {} on {} texts\n", args.model, r.docs);
    let _ = writeln!(s, "- Machine: {}", crate::common::machine());
    let _ = writeln!(s, "- Texts: {} ({} tokens after truncation at the model's limit)", args.source, r.tokens);
    let _ = writeln!(s, "- Command: `{command}`\n");
    let rounds = r.runs.first().map_or(0, |run| run.rounds.len());
    let _ = writeln!(s, "| engine | seconds (median of {rounds}) | docs/s | tokens/s | vs sentence-transformers |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    let peer = r.peer.as_ref().map(|p| p.secs);
    let all = || r.runs.iter().chain(&r.peer);
    for run in all() {
        let ratio = peer.map_or("–".into(), |p| format!("{:.2}×", p / run.secs));
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.1} | {:.0} | {ratio} |",
            run.engine,
            run.secs,
            r.docs as f64 / run.secs,
            r.tokens as f64 / run.secs
        );
    }
    let _ = writeln!(s, "\nSeconds per round (the sides alternate, back to back):\n");
    for run in all() {
        let each: Vec<String> = run.rounds.iter().map(|t| format!("{t:.2}")).collect();
        let _ = writeln!(s, "- {}: {}", run.engine, each.join(", "));
    }
    if r.runs.iter().any(|run| run.agreement.is_some()) {
        let _ = writeln!(s, "\nAgreement with sentence-transformers' vectors on these texts:\n");
    }
    for run in &r.runs {
        if let Some((mean, min)) = run.agreement {
            let _ = writeln!(s, "- {}: mean cosine {mean:.6}, minimum {min:.6}", run.engine);
        }
    }
    s
}
