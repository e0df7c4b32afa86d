//! usearch in-process, through its own Rust binding (the same 2.26.6 library
//! as the Python package): the one way to reach its predicate search, which
//! the Python binding does not expose. Built with the same `m`
//! (connectivity) and `ef_construction` (expansion_add), all build threads;
//! searched one query at a time with `expansion_search = ef`.

use std::time::Instant;

use anyhow::{anyhow, Result};
use naksha_index::metric::Metric;
use rayon::prelude::*;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::curve::Filter;
use crate::curve::{rss_bytes, AnnArgs, Engine};
use crate::datasets::Dataset;

/// A built usearch index.
pub(crate) struct Usearch(Index);

impl Engine for Usearch {
    fn search(&self, q: &[f32], k: usize, ef: usize, filter: Option<&Filter>) -> Vec<u32> {
        self.0.change_expansion_search(ef.max(k));
        let found = match filter {
            None => self.0.search(q, k),
            Some(f) => self.0.filtered_search(q, k, |key: u64| f.allowed.contains(key as usize)),
        };
        // A failed search scores as no results (recall 0), as a peer's error should.
        found.map(|m| m.keys.into_iter().map(|key| key as u32).collect()).unwrap_or_default()
    }
}

/// Build usearch on `ds` with the sweep's settings: (engine, build seconds, RSS growth).
pub(crate) fn build(ds: &Dataset, args: &AnnArgs) -> Result<(Usearch, f64, u64)> {
    let metric = match ds.metric {
        Metric::L2 => MetricKind::L2sq,
        // Vectors are normalised for cosine, so inner product ranks the same.
        Metric::Cosine | Metric::Dot => MetricKind::IP,
    };
    let options = IndexOptions {
        dimensions: ds.dim,
        metric,
        quantization: ScalarKind::F32,
        connectivity: args.m,
        expansion_add: args.ef_construction,
        expansion_search: 64,
        multi: false,
    };
    let rss0 = rss_bytes();
    let t = Instant::now();
    let index = Index::new(&options).map_err(|e| anyhow!("usearch: {e}"))?;
    index
        .reserve_capacity_and_threads(ds.len(), rayon::current_num_threads())
        .map_err(|e| anyhow!("usearch reserve: {e}"))?;
    ds.base
        .par_chunks_exact(ds.dim)
        .enumerate()
        .try_for_each(|(i, v)| index.add(i as u64, v))
        .map_err(|e| anyhow!("usearch add: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    Ok((Usearch(index), secs, rss_bytes().saturating_sub(rss0)))
}
