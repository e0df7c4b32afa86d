//! Token-aware chunking of long text.
//!
//! [`chunk_spans`] cuts a text into windows of at most `max_tokens` tokens, with
//! `overlap_tokens` tokens shared between neighbours. Within the second half of
//! each window it prefers to cut at a paragraph break, then a line break, then a
//! sentence end, and only then mid-sentence. Cuts fall on token boundaries, so
//! never inside a UTF-8 character.
//!
//! Properties (checked by property tests):
//! - the first chunk starts at 0 and the last ends at the text's end; each chunk
//!   starts no later than the previous one ends, so together they cover the text;
//! - neighbours share exactly `overlap_tokens` tokens (fewer only when a chunk is
//!   shorter than that);
//! - `start`/`end` are character offsets: `text.chars().skip(start).take(end - start)`
//!   is the chunk's text.

use crate::{Error, Result};

/// Chunking settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkConfig {
    /// Most tokens per chunk (clamped to what the model accepts).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Tokens shared by neighbouring chunks; must be under half of `max_tokens`.
    #[serde(default = "default_overlap")]
    pub overlap_tokens: usize,
}

fn default_max_tokens() -> usize {
    256
}
fn default_overlap() -> usize {
    32
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self { max_tokens: default_max_tokens(), overlap_tokens: default_overlap() }
    }
}

impl ChunkConfig {
    /// Rejects settings that cannot make progress.
    pub fn validate(&self) -> Result<()> {
        if self.max_tokens < 8 {
            return Err(Error::InvalidArgument(format!(
                "chunking.max_tokens must be at least 8, not {}",
                self.max_tokens
            )));
        }
        if self.overlap_tokens * 2 >= self.max_tokens {
            return Err(Error::InvalidArgument(format!(
                "chunking.overlap_tokens ({}) must be under half of max_tokens ({})",
                self.overlap_tokens, self.max_tokens
            )));
        }
        Ok(())
    }
}

/// One chunk of a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// First character (offset in chars, not bytes).
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// Byte range of the same span, for slicing.
    pub bytes: std::ops::Range<usize>,
    /// Tokens in the chunk.
    pub tokens: usize,
}

/// Cuts `text` given its tokens' byte spans (`tokens[i] = (start, end)`, in order,
/// special tokens excluded). See the module doc for the guarantees.
pub fn chunk_spans(text: &str, tokens: &[(usize, usize)], cfg: ChunkConfig) -> Result<Vec<Chunk>> {
    cfg.validate()?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let n = tokens.len();
    let mut cuts: Vec<(usize, usize, usize)> = Vec::new(); // (first token, end token, end byte)
    let mut first = 0usize;
    loop {
        let hard_end = (first + cfg.max_tokens).min(n);
        if hard_end == n {
            cuts.push((first, n, text.len()));
            break;
        }
        let end = best_cut(text, tokens, first + cfg.max_tokens / 2, hard_end);
        cuts.push((first, end, tokens[end].0));
        first = end.saturating_sub(cfg.overlap_tokens).max(first + 1);
    }
    let chars = CharIndex::new(text);
    Ok(cuts
        .into_iter()
        .map(|(first, end, end_byte)| {
            let start_byte = if first == 0 { 0 } else { tokens[first].0 };
            Chunk {
                start: chars.offset(start_byte),
                end: chars.offset(end_byte),
                bytes: start_byte..end_byte,
                tokens: end - first,
            }
        })
        .collect())
}

/// The token index in `(lo, hi]` to cut before, preferring strong breaks and,
/// among equals, the latest.
fn best_cut(text: &str, tokens: &[(usize, usize)], lo: usize, hi: usize) -> usize {
    let mut best = (0u8, hi);
    for j in (lo.max(1)..=hi).rev() {
        let gap = &text[tokens[j - 1].1..tokens[j].0];
        let prev = &text[tokens[j - 1].0..tokens[j - 1].1];
        let strength = if gap.contains("\n\n") {
            4
        } else if gap.contains('\n') {
            3
        } else if matches!(prev, "." | "!" | "?" | ";") && !gap.is_empty() {
            2
        } else if !gap.is_empty() {
            1
        } else {
            0
        };
        if strength > best.0 {
            best = (strength, j);
            if strength == 4 {
                break;
            }
        }
    }
    best.1
}

/// Byte offset → character offset, for offsets on char boundaries.
struct CharIndex<'a> {
    text: &'a str,
    ascii: bool,
}

impl<'a> CharIndex<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, ascii: text.is_ascii() }
    }
    fn offset(&self, byte: usize) -> usize {
        if self.ascii {
            byte
        } else {
            self.text[..byte].chars().count()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Words and punctuation, like BERT's pre-tokeniser.
    fn word_spans(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            if c.is_alphanumeric() {
                start.get_or_insert(i);
                continue;
            }
            if let Some(s) = start.take() {
                out.push((s, i));
            }
            if !c.is_whitespace() {
                out.push((i, i + c.len_utf8()));
            }
        }
        if let Some(s) = start {
            out.push((s, text.len()));
        }
        out
    }

    fn check(text: &str, cfg: ChunkConfig) {
        let spans = word_spans(text);
        let chunks = chunk_spans(text, &spans, cfg).unwrap();
        if text.is_empty() {
            assert!(chunks.is_empty());
            return;
        }
        assert_eq!(chunks[0].start, 0);
        assert_eq!(chunks.last().unwrap().end, text.chars().count());
        for c in &chunks {
            assert!(c.tokens <= cfg.max_tokens);
            assert!(text.is_char_boundary(c.bytes.start) && text.is_char_boundary(c.bytes.end));
            let by_chars: String = text.chars().skip(c.start).take(c.end - c.start).collect();
            assert_eq!(by_chars, &text[c.bytes.clone()]);
        }
        for w in chunks.windows(2) {
            assert!(w[1].start <= w[0].end, "gap between chunks");
            assert!(w[1].start > w[0].start, "no progress");
            // Shared tokens: those of the second chunk that start before the first ends.
            let shared = spans.iter().filter(|s| s.0 >= w[1].bytes.start && s.0 < w[0].bytes.end).count();
            assert_eq!(shared, cfg.overlap_tokens.min(w[0].tokens - 1));
        }
    }

    #[test]
    fn prefers_paragraph_then_sentence_breaks() {
        let para = "alpha beta gamma delta. epsilon zeta eta theta.";
        let text = format!("{para}\n\n{para} {para}");
        let spans = word_spans(&text);
        let cfg = ChunkConfig { max_tokens: 16, overlap_tokens: 0 };
        let chunks = chunk_spans(&text, &spans, cfg).unwrap();
        // The first cut is at the paragraph break (token 10), not at the hard limit 16.
        assert_eq!(&text[chunks[0].bytes.clone()], format!("{para}\n\n"));
        // The next one ends after a full stop.
        assert!(text[chunks[1].bytes.clone()].trim_end().ends_with('.'));
    }

    #[test]
    fn short_text_is_one_chunk_and_bad_settings_are_rejected() {
        let chunks = chunk_spans("héllo wörld", &word_spans("héllo wörld"), ChunkConfig::default()).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!((chunks[0].start, chunks[0].end), (0, 11));
        assert!(chunk_spans("x", &[(0, 1)], ChunkConfig { max_tokens: 10, overlap_tokens: 5 }).is_err());
        assert!(chunk_spans("x", &[(0, 1)], ChunkConfig { max_tokens: 4, overlap_tokens: 0 }).is_err());
    }

    proptest! {
        #[test]
        fn chunks_cover_overlap_and_respect_limits(
            words in proptest::collection::vec("[a-zé日本]{1,8}|[.,!?]|\n\n|\n", 0..400),
            max_tokens in 8usize..64,
            overlap_frac in 0usize..50,
        ) {
            let text = words.join(" ");
            let overlap_tokens = (max_tokens - 1) / 2 * overlap_frac / 100;
            check(&text, ChunkConfig { max_tokens, overlap_tokens });
        }
    }
}
