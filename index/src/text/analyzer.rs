//! Analyzer settings (stored in a collection's config) and the tantivy
//! tokenizer chain they stand for.
//!
//! | kind         | chain                                                                   |
//! |--------------|-------------------------------------------------------------------------|
//! | `language`   | split on non-alphanumerics → drop tokens over 40 bytes → lowercase → stop words (optional) → Snowball stemmer (optional) |
//! | `simple`     | split on non-alphanumerics → drop long tokens → lowercase                |
//! | `whitespace` | split on whitespace → drop long tokens → lowercase                       |

use serde::{Deserialize, Serialize};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer, WhitespaceTokenizer,
};

use crate::{Error, Result};

/// How text is cut into terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalyzerKind {
    /// Words, lowercased, with the language's stop words and stemmer.
    #[default]
    Language,
    /// Words, lowercased.
    Simple,
    /// Whitespace-separated tokens, lowercased.
    Whitespace,
}

/// Languages with a Snowball stemmer (and, for most, a stop-word list).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum TextLanguage {
    Danish,
    Dutch,
    #[default]
    English,
    Finnish,
    French,
    German,
    Hungarian,
    Italian,
    Norwegian,
    Portuguese,
    Russian,
    Spanish,
    Swedish,
}

impl TextLanguage {
    fn tantivy(self) -> Language {
        match self {
            TextLanguage::Danish => Language::Danish,
            TextLanguage::Dutch => Language::Dutch,
            TextLanguage::English => Language::English,
            TextLanguage::Finnish => Language::Finnish,
            TextLanguage::French => Language::French,
            TextLanguage::German => Language::German,
            TextLanguage::Hungarian => Language::Hungarian,
            TextLanguage::Italian => Language::Italian,
            TextLanguage::Norwegian => Language::Norwegian,
            TextLanguage::Portuguese => Language::Portuguese,
            TextLanguage::Russian => Language::Russian,
            TextLanguage::Spanish => Language::Spanish,
            TextLanguage::Swedish => Language::Swedish,
        }
    }
}

fn yes() -> bool {
    true
}

/// A collection's analyzer: `{"kind": "language", "language": "english", "stop_words": true, "stemming": true}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analyzer {
    /// Tokenizer chain.
    #[serde(default)]
    pub kind: AnalyzerKind,
    /// Language of the stop words and stemmer (kind `language`).
    #[serde(default)]
    pub language: TextLanguage,
    /// Drop the language's stop words.
    #[serde(default = "yes")]
    pub stop_words: bool,
    /// Reduce words to their Snowball stem.
    #[serde(default = "yes")]
    pub stemming: bool,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self { kind: AnalyzerKind::Language, language: TextLanguage::English, stop_words: true, stemming: true }
    }
}

impl Analyzer {
    /// The tantivy analyzer.
    pub fn build(&self) -> Result<TextAnalyzer> {
        Ok(match self.kind {
            AnalyzerKind::Simple => TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(RemoveLongFilter::limit(40))
                .filter(LowerCaser)
                .build(),
            AnalyzerKind::Whitespace => TextAnalyzer::builder(WhitespaceTokenizer::default())
                .filter(RemoveLongFilter::limit(40))
                .filter(LowerCaser)
                .build(),
            AnalyzerKind::Language => {
                let lang = self.language.tantivy();
                let stop = if self.stop_words {
                    Some(StopWordFilter::new(lang).ok_or_else(|| {
                        Error::InvalidQuery(format!(
                            "no stop-word list for {:?}; set stop_words to false",
                            self.language
                        ))
                    })?)
                } else {
                    None
                };
                let mut b = TextAnalyzer::builder(SimpleTokenizer::default())
                    .filter(RemoveLongFilter::limit(40))
                    .filter(LowerCaser)
                    .dynamic();
                if let Some(stop) = stop {
                    b = b.filter_dynamic(stop);
                }
                if self.stemming {
                    b = b.filter_dynamic(Stemmer::new(lang));
                }
                b.build()
            }
        })
    }

    /// The terms `text` becomes (for tests and diagnostics).
    pub fn terms(&self, text: &str) -> Result<Vec<String>> {
        let mut a = self.build()?;
        let mut stream = a.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        Ok(out)
    }
}
