//! Datasets: synthetic clustered vectors and fvecs/ivecs files.

use std::io::{BufWriter, Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use naksha_index::metric::Metric;
use naksha_index::testing::{clustered, prepare_all};

/// Base vectors and queries in one space.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Name for reports.
    pub name: String,
    /// Dimension.
    pub dim: usize,
    /// Metric.
    pub metric: Metric,
    /// Base vectors, `n × dim`, prepared for the metric (normalised for cosine).
    pub base: Vec<f32>,
    /// Query vectors, prepared likewise.
    pub queries: Vec<f32>,
}

impl Dataset {
    /// Number of base vectors.
    pub fn len(&self) -> usize {
        self.base.len() / self.dim
    }

    /// True when there are no base vectors.
    pub fn is_empty(&self) -> bool {
        self.base.is_empty()
    }

    /// Number of queries.
    pub fn num_queries(&self) -> usize {
        self.queries.len() / self.dim
    }

    fn from_parts(name: String, dim: usize, metric: Metric, mut base: Vec<f32>, mut queries: Vec<f32>) -> Self {
        prepare_all(&mut base, dim, metric);
        prepare_all(&mut queries, dim, metric);
        Self { name, dim, metric, base, queries }
    }
}

/// `n` base vectors and `nq` held-out queries from the same clustered
/// distribution ([`naksha_index::testing::clustered`]), seeded.
pub fn synthetic(n: usize, nq: usize, dim: usize, metric: Metric, seed: u64) -> Dataset {
    let clusters = (n / 500).clamp(10, 1000);
    let mut all = clustered(n + nq, dim, clusters, 0.5, seed);
    let queries = all.split_off(n * dim);
    let name = format!("synthetic-clustered n={n} dim={dim} seed={seed}");
    Dataset::from_parts(name, dim, metric, all, queries)
}

/// The Debian corpus (`text` fields) and its known-item queries as vectors
/// of `model` (cosine), both from [`crate::corpus::vectors`] (cached): real
/// embeddings, with queries drawn from a different text distribution (short
/// synopses) than the base (long descriptions), as in retrieval.
pub fn debian(set: &crate::quality::KnownItemArgs) -> Result<Dataset> {
    let records = crate::corpus::read(&set.corpus, set.docs)?;
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let (base, dim) = crate::corpus::vectors(&set.models_dir, &set.model, &texts)?;
    let queries = crate::quality::read_queries(&set.eval_dir)?;
    let questions: Vec<&str> = queries.iter().take(set.queries).map(|q| q.0.as_str()).collect();
    let (q, _) = crate::corpus::vectors(&set.models_dir, &set.model, &questions)?;
    let name = format!(
        "Debian descriptions ({} records, {} queries) as {} vectors",
        records.len(),
        questions.len(),
        set.model
    );
    Ok(Dataset::from_parts(name, dim, Metric::Cosine, base, q))
}

/// A dataset from fvecs files (TEXMEX layout: per vector, `i32` dim then `dim × f32`, little-endian).
pub fn from_fvecs(base: &Path, queries: &Path, metric: Metric, limit: Option<usize>) -> Result<Dataset> {
    let (dim, mut b) = read_fvecs(base)?;
    let (qdim, q) = read_fvecs(queries)?;
    if dim != qdim {
        bail!("base has dimension {dim}, queries {qdim}");
    }
    if let Some(l) = limit {
        b.truncate(l * dim);
    }
    let name = format!("{} ({} vectors, dim {dim})", base.display(), b.len() / dim);
    Ok(Dataset::from_parts(name, dim, metric, b, q))
}

/// Read an fvecs file: returns the dimension and the vectors.
pub fn read_fvecs(path: &Path) -> Result<(usize, Vec<f32>)> {
    let mut bytes = Vec::new();
    fs_err_open(path)?.read_to_end(&mut bytes)?;
    let mut out = Vec::new();
    let mut dim = 0usize;
    let mut pos = 0;
    while pos < bytes.len() {
        let d = i32::from_le_bytes(bytes.get(pos..pos + 4).context("truncated fvecs header")?.try_into()?) as usize;
        if dim == 0 {
            dim = d;
        } else if d != dim {
            bail!("{}: mixed dimensions {dim} and {d}", path.display());
        }
        let body = bytes.get(pos + 4..pos + 4 + 4 * d).context("truncated fvecs vector")?;
        out.extend(body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        pos += 4 + 4 * d;
    }
    Ok((dim, out))
}

/// Write vectors as fvecs.
pub fn write_fvecs(path: &Path, dim: usize, vectors: &[f32]) -> Result<()> {
    let mut w = BufWriter::new(fs_err::File::create(path)?);
    for v in vectors.chunks_exact(dim) {
        w.write_all(&(dim as i32).to_le_bytes())?;
        for x in v {
            w.write_all(&x.to_le_bytes())?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Write integer vectors (ground truth) as ivecs.
pub fn write_ivecs(path: &Path, rows: &[Vec<u32>]) -> Result<()> {
    let mut w = BufWriter::new(fs_err::File::create(path)?);
    for r in rows {
        w.write_all(&(r.len() as i32).to_le_bytes())?;
        for x in r {
            w.write_all(&(*x as i32).to_le_bytes())?;
        }
    }
    w.flush()?;
    Ok(())
}

fn fs_err_open(path: &Path) -> Result<fs_err::File> {
    Ok(fs_err::File::open(path)?)
}
