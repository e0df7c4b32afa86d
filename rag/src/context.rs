//! From question to context passages: retrieve, drop near-duplicates, order by
//! maximal marginal relevance (MMR), pack into the token budget.

use naksha_query::embed::{ChunkConfig, Embedder};
use naksha_query::{dot, Collection, PointId, ScoredPoint, SearchRequest, Syntax};
use serde_json::Value;

use crate::{RagRequest, Result};

/// Cosine at or above which two passages count as the same text.
const NEAR_DUPLICATE: f32 = 0.97;
/// MMR trade-off: 1 is relevance only, 0 diversity only.
const LAMBDA: f32 = 0.7;
/// A passage cut to fit the budget keeps at least this many tokens, or is left out.
const MIN_PIECE_TOKENS: usize = 16;
/// The smallest chunk size the chunker is asked for while cutting.
const MIN_CUT_TARGET: usize = 8;

/// One context passage.
#[derive(Clone, Debug, PartialEq)]
pub struct Passage {
    /// The point it comes from.
    pub id: PointId,
    /// Its document: a chunk's `doc_id`, else the point id.
    pub doc_id: String,
    /// The text field quoted (`text` for a document's chunk).
    pub field: String,
    /// Character offset of `text` in the document (in the field, for other points).
    pub start: usize,
    /// The passage (a prefix of the field when cut to fit the budget).
    pub text: String,
    /// Retrieval score (hybrid: fused).
    pub score: f32,
    /// Tokens in `text` (set when packed).
    pub tokens: usize,
    /// Unit-length stored vector (for de-duplication and MMR).
    vector: Vec<f32>,
}

/// Candidates for `req`: hybrid (or vector-only) search with the question
/// read as plain words, several times more than will be used.
pub(crate) fn candidates(c: &Collection, req: &RagRequest, question: &[f32]) -> Result<Vec<Passage>> {
    let k = (req.limit * 4).clamp(20, 200);
    let mut search = SearchRequest::text(req.question.clone(), k).syntax(Syntax::Plain);
    search.vector = question.to_vec();
    search.filter = req.filter.clone();
    search.with_text = true;
    search.with_vector = true;
    Ok(c.search(&search)?.into_iter().filter_map(passage).collect())
}

/// The passage a hit offers: a document chunk's `text`, else the point's
/// longest text field. Hits without text or without a vector are skipped.
fn passage(hit: ScoredPoint) -> Option<Passage> {
    let ScoredPoint { id, score, payload, text: Some(Value::Object(fields)), vector: Some(mut vector), .. } = hit
    else {
        return None;
    };
    let chunk = |k: &str| payload.as_ref().and_then(|p| p.get(k));
    let doc = (chunk("doc_id").and_then(Value::as_str), chunk("start").and_then(Value::as_u64));
    let (field, body, doc_id, start) = match (fields.get("text").and_then(Value::as_str), doc) {
        (Some(body), (Some(doc), Some(start))) => ("text", body, doc.to_owned(), start as usize),
        _ => {
            let (field, body) =
                fields.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s))).max_by_key(|(_, s)| s.len())?;
            (field, body, id.to_string(), 0)
        }
    };
    if body.trim().is_empty() {
        return None;
    }
    let norm = dot(&vector, &vector).sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    Some(Passage { id, doc_id, field: field.to_owned(), start, text: body.to_owned(), score, tokens: 0, vector })
}

pub(super) fn same_text(a: &str, b: &str) -> bool {
    a.split_whitespace().map(str::to_lowercase).eq(b.split_whitespace().map(str::to_lowercase))
}

/// At most `limit` passages in MMR order, near-duplicates dropped. Relevance is
/// the retrieval rank (1 for the best, falling linearly), redundancy the
/// cosine to the closest passage already chosen.
pub(super) fn select(candidates: Vec<Passage>, limit: usize) -> Vec<Passage> {
    let mut pool: Vec<(f32, Passage)> = Vec::with_capacity(candidates.len());
    let n = candidates.len().max(1) as f32;
    for (rank, p) in candidates.into_iter().enumerate() {
        let dup = pool.iter().any(|(_, q)| same_text(&q.text, &p.text) || dot(&q.vector, &p.vector) >= NEAR_DUPLICATE);
        if !dup {
            pool.push((1.0 - rank as f32 / n, p));
        }
    }
    let mut chosen: Vec<Passage> = Vec::with_capacity(limit.min(pool.len()));
    while chosen.len() < limit && !pool.is_empty() {
        let value = |(rel, p): &(f32, Passage)| {
            let redundancy = chosen.iter().map(|c| dot(&c.vector, &p.vector)).fold(0.0f32, f32::max);
            LAMBDA * rel - (1.0 - LAMBDA) * redundancy
        };
        let best = (0..pool.len()).max_by(|&a, &b| value(&pool[a]).total_cmp(&value(&pool[b])).then(b.cmp(&a)));
        let Some(best) = best else { break };
        chosen.push(pool.remove(best).1);
    }
    chosen
}

/// Passages in order while they fit `budget` tokens; the first that does not
/// fit is cut at a sentence or token boundary to the room left (if at least
/// [`MIN_PIECE_TOKENS`]), and packing stops there.
pub(super) fn pack(model: &Embedder, passages: Vec<Passage>, budget: usize) -> Result<Vec<Passage>> {
    let mut out = Vec::with_capacity(passages.len());
    let mut used = 0;
    for mut p in passages {
        let left = budget - used;
        let n = model.count_tokens(&p.text)?;
        if n <= left {
            p.tokens = n;
            used += n;
            out.push(p);
            continue;
        }
        if left >= MIN_PIECE_TOKENS {
            if let Some(cut) = cut_to(model, p, left)? {
                out.push(cut);
            }
        }
        break;
    }
    Ok(out)
}

/// The longest prefix of `p` of at most `left` tokens that the chunker would
/// cut, re-counted (a cut between word pieces can re-tokenise differently).
fn cut_to(model: &Embedder, mut p: Passage, left: usize) -> Result<Option<Passage>> {
    let mut target = left;
    while target >= MIN_CUT_TARGET {
        let chunks = model.chunk(&p.text, ChunkConfig { max_tokens: target, overlap_tokens: 0 })?;
        let Some(first) = chunks.first() else { return Ok(None) };
        let text = &p.text[first.bytes.clone()];
        let n = model.count_tokens(text)?;
        if n <= left {
            p.text = text.to_owned();
            p.tokens = n;
            return Ok(Some(p));
        }
        target -= (n - left).max(1);
    }
    Ok(None)
}
