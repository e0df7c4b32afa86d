//! The extractive generator: no LLM. It cuts the passages into sentences,
//! scores each by embedding similarity to the question and by the share of the
//! question's words it contains, and answers with the best few (near-identical
//! ones once), in passage order, each followed by its `[n]` citation.

use std::collections::HashSet;

use naksha_query::dot;
use naksha_query::embed::Embedder;

use crate::{char_offset, Citation, Error, Passage, RagEvent, Result, Sink};

/// Weight of embedding similarity; the rest is word overlap.
const SIMILARITY_WEIGHT: f32 = 0.6;
/// Sentences scoring under this share of the best are left out.
const KEEP_RATIO: f32 = 0.7;
/// Most sentences scored per answer (the first ones, in passage order).
const MAX_CANDIDATES: usize = 256;

const STOP_WORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "did", "do", "does", "for", "from", "how", "i",
    "in", "is", "it", "its", "my", "of", "on", "or", "that", "the", "this", "to", "was", "were", "what", "when",
    "where", "which", "who", "why", "with", "you", "your",
];

/// A sentence of a passage: byte range in the passage's text.
#[derive(Clone, Debug, PartialEq)]
struct Sentence {
    passage: usize,
    bytes: std::ops::Range<usize>,
}

/// Sentence spans of `text`, trimmed: cut after `.`, `!` or `?` followed by
/// white space, at blank lines, and before list items (`*`, `-`, `•` starting a line).
fn sentences(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut cuts = vec![0];
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(b, c)) in chars.iter().enumerate() {
        let next = chars.get(i + 1).map(|&(_, n)| n);
        let ends_sentence = matches!(c, '.' | '!' | '?') && next.is_none_or(char::is_whitespace);
        if ends_sentence {
            cuts.push(b + c.len_utf8());
        } else if c == '\n' {
            let rest = text[b + 1..].trim_start_matches([' ', '\t']);
            if rest.starts_with(['\n', '*', '-', '•']) {
                cuts.push(b + 1);
            }
        }
    }
    cuts.push(text.len());
    cuts.windows(2)
        .filter_map(|w| {
            let piece = &text[w[0]..w[1]];
            let lead = piece.len() - piece.trim_start().len();
            let body = piece.trim();
            (body.chars().filter(|c| c.is_alphanumeric()).count() >= 3).then(|| w[0] + lead..w[0] + lead + body.len())
        })
        .collect()
}

/// Lower-cased words with a light suffix strip, so "packets" meets "packet".
fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| {
        let w = w.to_lowercase();
        for suffix in ["ing", "ed", "es", "s"] {
            if let Some(stem) = w.strip_suffix(suffix) {
                if stem.chars().count() >= 3 {
                    return stem.to_owned();
                }
            }
        }
        w
    })
}

/// Writes the answer from `passages`, sending each cited sentence to `sink`.
pub(super) fn answer(
    model: &Embedder,
    question: &str,
    question_vector: &[f32],
    passages: &[Passage],
    max_sentences: usize,
    sink: Sink<'_>,
) -> Result<(String, Vec<Citation>)> {
    let wanted: HashSet<String> =
        terms(question).filter(|t| t.chars().count() >= 2 && !STOP_WORDS.contains(&t.as_str())).collect();
    let all: Vec<Sentence> = passages
        .iter()
        .enumerate()
        .flat_map(|(passage, p)| sentences(&p.text).into_iter().map(move |bytes| Sentence { passage, bytes }))
        .take(MAX_CANDIDATES)
        .collect();
    let texts: Vec<&str> = all.iter().map(|s| &passages[s.passage].text[s.bytes.clone()]).collect();
    let vectors = model.embed(&texts)?;
    let scores: Vec<f32> = texts
        .iter()
        .zip(&vectors)
        .map(|(text, v)| {
            let words: HashSet<String> = terms(text).collect();
            let overlap =
                if wanted.is_empty() { 0.0 } else { wanted.intersection(&words).count() as f32 / wanted.len() as f32 };
            SIMILARITY_WEIGHT * dot(v, question_vector) + (1.0 - SIMILARITY_WEIGHT) * overlap
        })
        .collect();
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let best = order.first().map_or(0.0, |&i| scores[i]);
    let mut picked: Vec<usize> = Vec::new();
    for i in order {
        if picked.len() == max_sentences || scores[i] < best * KEEP_RATIO {
            break;
        }
        if !picked.iter().any(|&j| super::context::same_text(texts[i], texts[j])) {
            picked.push(i);
        }
    }
    picked.sort_by_key(|&i| (all[i].passage, all[i].bytes.start));
    let mut answer = String::new();
    let mut citations = Vec::with_capacity(picked.len());
    for (n, &i) in picked.iter().enumerate() {
        let s = &all[i];
        let p = &passages[s.passage];
        let start = p.start + char_offset(&p.text, s.bytes.start);
        let text = texts[i];
        let flat: Vec<&str> = text.split_whitespace().collect();
        let token = format!("{}{} [{}]", if n == 0 { "" } else { " " }, flat.join(" "), n + 1);
        if !sink(RagEvent::Token(token.clone())) {
            return Err(Error::Cancelled);
        }
        answer.push_str(&token);
        citations.push(Citation {
            id: p.id.clone(),
            doc_id: p.doc_id.clone(),
            field: p.field.clone(),
            start,
            end: start + text.chars().count(),
            text: text.to_owned(),
            score: scores[i],
        });
    }
    Ok((answer, citations))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<&str> {
        sentences(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn sentences_cut_at_ends_blank_lines_and_list_items() {
        let text =
            "Ping tool. It measures loss\nin both directions! Fast?\n\nFeatures:\n * IPv6\n * über-fast 3.5x mode.";
        assert_eq!(
            pieces(text),
            vec![
                "Ping tool.",
                "It measures loss\nin both directions!",
                "Fast?",
                "Features:",
                "* IPv6",
                "* über-fast 3.5x mode."
            ]
        );
        assert!(pieces("  ... !? ").is_empty(), "no words, no sentence");
    }

    #[test]
    fn terms_are_lowercased_and_lightly_stemmed() {
        let t: Vec<String> = terms("Packets LOSSES tested, ping-ing").collect();
        assert_eq!(t, vec!["packet", "loss", "test", "ping", "ing"]);
    }
}
