//! The Debian descriptions corpus of `../shared/data` and its MiniLM vectors.
//!
//! Embedding all 61,396 texts takes 30 to 45 minutes on 2 cores, so the
//! vectors are cached in `bench/.cache/` under a name that carries the model,
//! the record count and a hash of every text: a changed corpus or model is
//! embedded again, never mixed up.
//!
//! Cache file: little-endian `f32`, `n × dim`, no header (the name says what it is).

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use naksha_embed::{DeviceKind, Models};

/// One corpus record (the fields the benches use).
#[derive(Clone, Debug)]
pub struct Record {
    /// Corpus id (what qrels name).
    pub id: u64,
    /// One-line synopsis.
    pub title: String,
    /// Long description.
    pub text: String,
}

/// Reads a JSONL file, plain or `.zst` (decompressed with the `zstd` command).
pub fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    read_jsonl_first(path, usize::MAX)
}

/// The first `limit` records of a JSONL file (the rest are not parsed).
pub fn read_jsonl_first(path: &Path, limit: usize) -> Result<Vec<serde_json::Value>> {
    let raw = if path.extension().is_some_and(|e| e == "zst") {
        let out =
            Command::new("zstd").arg("-dc").arg(path).output().context("cannot run zstd (apt-get install zstd)")?;
        if !out.status.success() {
            bail!("zstd -dc {} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        }
        String::from_utf8(out.stdout)?
    } else {
        fs_err::read_to_string(path)?
    };
    raw.lines()
        .filter(|l| !l.trim().is_empty())
        .take(limit)
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad line in {}", path.display())))
        .collect()
}

/// The first `limit` records of the corpus.
pub fn read(path: &Path, limit: usize) -> Result<Vec<Record>> {
    read_jsonl_first(path, limit)?
        .into_iter()
        .map(|v| {
            Ok(Record {
                id: v["id"].as_u64().context("record without an id")?,
                title: v["title"].as_str().unwrap_or_default().to_owned(),
                text: v["text"].as_str().context("record without a text field")?.to_owned(),
            })
        })
        .collect()
}

/// Where the vectors of `texts` under `model` are cached.
pub fn cache_path(model: &str, texts: &[&str]) -> PathBuf {
    let mut h = std::hash::DefaultHasher::new();
    for t in texts {
        h.write(t.as_bytes());
        h.write_u8(0xff);
    }
    crate::common::bench_dir().join(".cache").join(format!("{model}-{}-{:016x}.f32", texts.len(), h.finish()))
}

/// The vectors of `texts` (`n × dim`), from the cache or embedded now (and cached).
pub fn vectors(models_dir: &Path, model: &str, texts: &[&str]) -> Result<(Vec<f32>, usize)> {
    let path = cache_path(model, texts);
    // A hit needs no model: the name says which model and texts, the size gives the dimension.
    if let Ok(raw) = fs_err::read(&path) {
        let row = texts.len() * 4;
        if row > 0 && !raw.is_empty() && raw.len() % row == 0 {
            eprintln!("vectors from {}", path.display());
            let v = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            return Ok((v, raw.len() / row));
        }
    }
    let models = Models::open(models_dir, DeviceKind::Cpu)?;
    let m = models.get(model)?;
    let dim = m.dim();
    let started = Instant::now();
    let bar = crate::common::progress(texts.len(), format!("embedding with {model}"));
    let mut out = Vec::with_capacity(texts.len() * dim);
    for chunk in texts.chunks(512) {
        for v in m.embed(chunk)? {
            out.extend_from_slice(&v);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    eprintln!("embedded {} texts in {:.0} s", texts.len(), started.elapsed().as_secs_f64());
    fs_err::create_dir_all(path.parent().context("cache path has a parent")?)?;
    let tmp = path.with_extension("tmp");
    fs_err::write(&tmp, out.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())?;
    fs_err::rename(&tmp, &path)?;
    Ok((out, dim))
}
