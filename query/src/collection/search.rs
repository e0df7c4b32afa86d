//! The read path: vector, text (BM25) and hybrid search over the memtables and
//! every segment, with the same filters and deletions on both sides.
//!
//! ```text
//! request ─ resolve mode ─ embed query text (vector side, no lock held)
//!         ─ read lock ─ admitted sets per segment (filter − deletions)
//!         ─ vector side: per segment graph walk | exact scan → top-k' ─┐
//!         ─ text side:   BM25 over every text index, global stats → top-k' ┴─ fuse (hybrid) ─ page ─ fetch fields
//! ```
//! In hybrid mode each side returns `k' = max(2k, 50)` candidates (at most
//! [`MAX_RESULTS`]) so that a point ranked just below `k` on one side can still
//! win on the sum.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use naksha_index::bitset::Bitset;
use naksha_index::segment::Strategy;
use naksha_index::text::{self, Part, Syntax, TextIndex, TextQuery};
use naksha_storage::point::PointId;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::state::{Loc, SegmentSlot, State};
use super::{internal, Collection, Want};
use crate::filter::Filter;
use crate::hybrid::{fuse, Fusion, Mode};
use crate::{Error, Result};

/// Largest `limit + offset` a search accepts.
pub const MAX_RESULTS: usize = 10_000;

/// A search request.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    /// Query vector; may be empty when `text` is given and the collection has a model.
    pub vector: Vec<f32>,
    /// Query text: BM25 terms for the text side, and embedded with the
    /// collection's model for the vector side when `vector` is empty.
    pub text: Option<String>,
    /// How `text` is read on the BM25 side: the query language (default) or plain words.
    pub syntax: Syntax,
    /// Ranking signal (default: hybrid when both signals are available, else the one that is).
    pub mode: Option<Mode>,
    /// How hybrid merges the two sides.
    pub fusion: Fusion,
    /// Results to return.
    pub limit: usize,
    /// Results to skip.
    pub offset: usize,
    /// Beam width (default: the collection's).
    pub ef: Option<usize>,
    /// Search without the index (ground truth). BM25 is always exhaustive.
    pub exact: bool,
    /// Payload filter.
    pub filter: Option<Filter>,
    /// Return payloads.
    pub with_payload: bool,
    /// Return vectors.
    pub with_vector: bool,
    /// Return text fields.
    pub with_text: bool,
    /// Return highlighted snippets of the text fields (needs a text query and `text_fields`).
    pub highlight: bool,
}

impl SearchRequest {
    /// The `limit` nearest points to `vector`, with payloads.
    pub fn new(vector: Vec<f32>, limit: usize) -> Self {
        Self {
            vector,
            text: None,
            syntax: Syntax::Query,
            mode: None,
            fusion: Fusion::default(),
            limit,
            offset: 0,
            ef: None,
            exact: false,
            filter: None,
            with_payload: true,
            with_vector: false,
            with_text: false,
            highlight: false,
        }
    }
    /// The `limit` best points for `text`: BM25, embedded vector, or both (see [`SearchRequest::mode`]).
    pub fn text(text: impl Into<String>, limit: usize) -> Self {
        Self { text: Some(text.into()), ..Self::new(Vec::new(), limit) }
    }
    /// Builder-style: set a filter.
    pub fn filter(mut self, f: Filter) -> Self {
        self.filter = Some(f);
        self
    }
    /// Builder-style: set `ef`.
    pub fn ef(mut self, ef: usize) -> Self {
        self.ef = Some(ef);
        self
    }
    /// Builder-style: exact search.
    pub fn exact(mut self, exact: bool) -> Self {
        self.exact = exact;
        self
    }
    /// Builder-style: set the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }
    /// Builder-style: how the text is read.
    pub fn syntax(mut self, syntax: Syntax) -> Self {
        self.syntax = syntax;
        self
    }
    /// Builder-style: set the fusion.
    pub fn fusion(mut self, fusion: Fusion) -> Self {
        self.fusion = fusion;
        self
    }
    /// Builder-style: ask for highlighted snippets.
    pub fn highlight(mut self, on: bool) -> Self {
        self.highlight = on;
        self
    }
}

/// One search result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoredPoint {
    /// Point id.
    pub id: PointId,
    /// Score, higher is better except for l2 in vector mode. Vector mode: the
    /// metric's score ([`naksha_index::metric`]: similarity for cosine/dot,
    /// distance for l2); text mode: BM25; hybrid: the fused score.
    pub score: f32,
    /// Payload, when requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Stored vector, when requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// Text fields, when requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
    /// Per text field, a fragment with the matched terms in `<b>…</b>`, when requested
    /// (fields without a match are left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub highlights: Option<BTreeMap<String, String>>,
}

/// Which text index a part of a text search is.
#[derive(Clone, Copy)]
enum Source {
    Active,
    Frozen,
    Segment(u64),
}

impl Source {
    fn loc(self, slot: u32) -> Loc {
        match self {
            Source::Active => Loc::Active(slot),
            Source::Frozen => Loc::Frozen(slot),
            Source::Segment(id) => Loc::Segment(id, slot),
        }
    }
}

fn bad(m: impl Into<String>) -> Error {
    Error::InvalidArgument(m.into())
}

impl Collection {
    /// Which mode `req` runs in, or why it cannot run.
    fn resolve_mode(&self, req: &SearchRequest) -> Result<Mode> {
        let cfg = &self.inner.config;
        let has_text = req.text.as_deref().is_some_and(|t| !t.trim().is_empty());
        let vector_ok = !req.vector.is_empty() || (has_text && cfg.embed.is_some());
        let text_ok = has_text && !cfg.text_fields.is_empty();
        let no_text_fields = || {
            bad(format!(
                "collection {:?} has no text_fields: create it with text_fields for text and hybrid search",
                self.inner.name
            ))
        };
        let need_text = || if has_text { no_text_fields() } else { bad("text and hybrid modes need query text") };
        let need_vector =
            || bad("vector mode needs a vector, or text and a collection with an embedding model (embed)");
        match req.mode {
            Some(Mode::Vector) if !vector_ok => Err(need_vector()),
            Some(Mode::Text) if !text_ok => Err(need_text()),
            Some(Mode::Hybrid) if !text_ok => Err(need_text()),
            Some(Mode::Hybrid) if !vector_ok => Err(need_vector()),
            Some(m) => Ok(m),
            None => match (vector_ok, text_ok) {
                (true, true) => Ok(Mode::Hybrid),
                (true, false) => Ok(Mode::Vector),
                (false, true) => Ok(Mode::Text),
                (false, false) if has_text => Err(bad(format!(
                    "collection {:?} cannot search by text: it has no text_fields (BM25) and no embedding model (embed)",
                    self.inner.name
                ))),
                (false, false) => Err(bad("a query needs a vector or text")),
            },
        }
    }

    /// The best points for `req`, best first.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        let cfg = &self.inner.config.vectors;
        if req.limit == 0 || req.limit.saturating_add(req.offset) > MAX_RESULTS {
            return Err(bad(format!("limit must be at least 1 and limit + offset at most {MAX_RESULTS}")));
        }
        if req.ef.is_some_and(|ef| !(1..=4096).contains(&ef)) {
            return Err(bad("ef must be between 1 and 4096"));
        }
        if let Some(f) = &req.filter {
            f.validate()?;
        }
        req.fusion.validate()?;
        let mode = self.resolve_mode(req)?;
        let query_text = req.text.as_deref().filter(|t| !t.trim().is_empty());
        if req.highlight && (query_text.is_none() || self.inner.config.text_fields.is_empty()) {
            return Err(bad("highlight needs query text and a collection with text_fields"));
        }
        let vector = match mode {
            Mode::Text => None,
            Mode::Vector | Mode::Hybrid => {
                let mut q = match (query_text, req.vector.is_empty()) {
                    (Some(text), true) => self.embed_query(text)?,
                    _ => req.vector.clone(),
                };
                cfg.metric.prepare(&mut q, cfg.dim, None)?;
                Some(q)
            }
        };
        let k = req.limit + req.offset;
        let side_k = if mode == Mode::Hybrid { (2 * k).clamp(50, MAX_RESULTS) } else { k };
        let filter = req.filter.as_ref();
        let st = self.inner.state.read();
        let text_query = match (mode, query_text) {
            (Mode::Text | Mode::Hybrid, Some(t)) => Some(self.parse_text(&st, t, req.syntax)?),
            (Mode::Vector, Some(t)) if req.highlight => Some(self.parse_text(&st, t, req.syntax)?),
            _ => None,
        };
        // Filter matches per segment, computed once for both sides.
        let allowed: Vec<Option<Bitset>> = st.segments.iter().map(|s| filter.map(|f| s.matching(f))).collect();
        let vector_hits = vector.map(|q| self.vector_hits(&st, &q, side_k, req, &allowed));
        let text_hits = match (mode, &text_query) {
            (Mode::Text | Mode::Hybrid, Some(q)) => Some(self.text_hits(&st, q, side_k, filter, &allowed)?),
            _ => None,
        };
        let ranked: Vec<(f32, Loc)> = match (mode, vector_hits, text_hits) {
            (Mode::Vector, Some(v), _) => v.into_iter().map(|(d, l)| (cfg.metric.score(d), l)).collect(),
            (Mode::Text, _, Some(t)) => t,
            (Mode::Hybrid, Some(v), Some(t)) => {
                let v: Vec<(f32, Loc)> = v.into_iter().map(|(d, l)| (-d, l)).collect();
                fuse(&v, &t, req.fusion)
            }
            _ => return Err(internal("search sides do not match the mode")),
        };
        let want = Want { payload: req.with_payload, vector: req.with_vector, text: req.with_text || req.highlight };
        ranked
            .into_iter()
            .skip(req.offset)
            .take(req.limit)
            .map(|(score, loc)| {
                let id = st.id_at(loc)?;
                let mut f = self.materialize(&st, loc, want)?;
                let highlights = match (&text_query, req.highlight) {
                    (Some(q), true) => Some(self.highlights(&st, loc, q, f.text.as_ref())?),
                    _ => None,
                };
                if !req.with_text {
                    f.text = None;
                }
                Ok(ScoredPoint { id, score, payload: f.payload, vector: f.vector, text: f.text, highlights })
            })
            .collect()
    }

    /// The `k` nearest admitted points per part, merged, as (distance, location), nearest first.
    fn vector_hits(
        &self,
        st: &State,
        query: &[f32],
        k: usize,
        req: &SearchRequest,
        allowed: &[Option<Bitset>],
    ) -> Vec<(f32, Loc)> {
        let metric = self.inner.config.vectors.metric;
        let ef = req.ef.unwrap_or(self.inner.config.vectors.hnsw.ef).max(k);
        let filter = req.filter.as_ref();
        let tag = |loc: fn(u32) -> Loc, hits: Vec<naksha_index::topk::Neighbor>| {
            hits.into_iter().map(move |n| (n.distance, loc(n.node)))
        };
        let mut hits: Vec<(f32, Loc)> = tag(Loc::Active, st.active.search(query, k, metric, None, filter)).collect();
        if let Some(f) = &st.frozen {
            hits.extend(tag(Loc::Frozen, f.mem.search(query, k, metric, Some(&f.deleted), filter)));
        }
        let per_segment: Vec<Vec<(f32, Loc)>> = st
            .segments
            .par_iter()
            .zip(allowed)
            .map(|(slot, allowed)| self.search_segment(slot, query, k, ef, req.exact, allowed.as_ref()))
            .collect();
        hits.extend(per_segment.into_iter().flatten());
        hits.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        hits.truncate(k);
        hits
    }

    fn search_segment(
        &self,
        slot: &SegmentSlot,
        query: &[f32],
        k: usize,
        ef: usize,
        exact: bool,
        allowed: Option<&Bitset>,
    ) -> Vec<(f32, Loc)> {
        let live = slot.live();
        let candidates = allowed.map_or(live, Bitset::count);
        let strategy = if exact { Strategy::Exact } else { self.inner.options.planner.choose(live, candidates, ef, k) };
        let m = &self.inner.metrics;
        match strategy {
            Strategy::Graph => m.graph_searches.fetch_add(1, Relaxed),
            Strategy::Exact => m.exact_searches.fetch_add(1, Relaxed),
        };
        slot.seg
            .search(query, k, ef, strategy, allowed, &slot.deleted)
            .into_iter()
            .map(|n| (n.distance, Loc::Segment(slot.id, n.node)))
            .collect()
    }

    /// `text` in the query language of the collection's text index.
    fn parse_text(&self, st: &State, text: &str, syntax: Syntax) -> Result<TextQuery> {
        let index = st.active.text.as_ref().ok_or_else(|| internal("text fields without a memtable text index"))?;
        Ok(index.parse_as(text, syntax)?)
    }

    /// The `k` best admitted BM25 hits over every text index, as (score, location), best first.
    fn text_hits(
        &self,
        st: &State,
        query: &TextQuery,
        k: usize,
        filter: Option<&Filter>,
        allowed: &[Option<Bitset>],
    ) -> Result<Vec<(f32, Loc)>> {
        let mut parts: Vec<Part<'_>> = Vec::new();
        let mut sources = Vec::new();
        if let Some(index) = &st.active.text {
            parts.push(Part { index, admitted: st.active.admitted_set(None, filter).map(Arc::new) });
            sources.push(Source::Active);
        }
        if let Some(f) = &st.frozen {
            if let Some(index) = &f.mem.text {
                parts.push(Part { index, admitted: f.mem.admitted_set(Some(&f.deleted), filter).map(Arc::new) });
                sources.push(Source::Frozen);
            }
        }
        for (slot, allowed) in st.segments.iter().zip(allowed) {
            let Some(index) = slot.seg.text_index() else { continue };
            let admitted = match allowed {
                Some(a) => Some(a.clone()),
                None if slot.deleted.count() > 0 => {
                    let mut live = Bitset::full(slot.seg.len());
                    live.and_not(&slot.deleted);
                    Some(live)
                }
                None => None,
            };
            parts.push(Part { index, admitted: admitted.map(Arc::new) });
            sources.push(Source::Segment(slot.id));
        }
        let per_part = text::search(&parts, query, k)?;
        let mut hits: Vec<(f32, Loc)> = per_part
            .into_iter()
            .zip(sources)
            .flat_map(|(hits, src)| hits.into_iter().map(move |(score, slot)| (score, src.loc(slot))))
            .collect();
        hits.sort_by(|a, b| b.0.total_cmp(&a.0));
        hits.truncate(k);
        Ok(hits)
    }

    /// Highlighted fragments of the point at `loc`'s text fields.
    fn highlights(
        &self,
        st: &State,
        loc: Loc,
        query: &TextQuery,
        text: Option<&Value>,
    ) -> Result<BTreeMap<String, String>> {
        let index: Option<&TextIndex> = match loc {
            Loc::Active(_) => st.active.text.as_deref(),
            Loc::Frozen(_) => st.frozen.as_ref().and_then(|f| f.mem.text.as_deref()),
            Loc::Segment(id, _) => st.slot(id).and_then(|s| s.seg.text_index()),
        };
        let mut out = BTreeMap::new();
        let (Some(index), Some(text)) = (index, text) else { return Ok(out) };
        for field in &self.inner.config.text_fields {
            if let Some(s) = text.get(field).and_then(Value::as_str) {
                let snippet = index.snippet(query, field, s)?;
                if !snippet.is_empty() {
                    out.insert(field.clone(), snippet);
                }
            }
        }
        Ok(out)
    }
}
