//! Full-text BM25 index over points' text fields, with tantivy.
//!
//! One [`TextIndex`] belongs to one set of points: an immutable segment (on disk,
//! built once beside its graph, in the segment folder's `text/`) or the mutable
//! memtable (in RAM, appended to, refreshed before a search). Every tantivy
//! document carries the point's slot (segment offset or memtable slot) in the
//! fast field `slot`, so a hit maps back to the point, and deletions and filters
//! are the same bitsets the vector side uses.
//!
//! BM25 statistics (document count, average field length, document frequency)
//! are summed over every index a search covers ([`search`]), so a score means
//! the same whichever segment a point sits in.
//!
//! | file          | job                                                     |
//! |---------------|---------------------------------------------------------|
//! | `mod.rs`      | schema, build/open/append, search across indexes        |
//! | `analyzer.rs` | analyzer settings → tantivy tokenizers                  |
//! | `tests.rs`    | analysis, query syntax, filters, statistics, snippets   |

mod analyzer;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tantivy::collector::TopDocs;
use tantivy::query::{Bm25StatisticsProvider, BooleanQuery, BoostQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

pub use analyzer::{Analyzer, AnalyzerKind, TextLanguage};

use crate::bitset::Bitset;
use crate::{Error, Result};

/// Current layout of the `text/` folder of a segment (tantivy's own files).
pub const FORMAT_VERSION: u32 = 1;

const TOKENIZER: &str = "naksha";
const SLOT: &str = "slot";
/// Memory for one index writer (tantivy's minimum is 15 MB per thread).
const WRITER_BYTES: usize = 20_000_000;

/// What is indexed and how.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// Text fields, in order.
    pub fields: Vec<String>,
    /// Analysis (default: English with stop words and stemming).
    #[serde(default)]
    pub analyzer: Analyzer,
    /// Per-field score multipliers (default 1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub boosts: BTreeMap<String, f32>,
}

impl TextConfig {
    /// Rejects empty or repeated field names and bad boosts.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidQuery(m));
        if self.fields.is_empty() {
            return bad("text_fields must name at least one field".into());
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            if f.is_empty() || f == SLOT || !seen.insert(f) {
                return bad(format!("text field {f:?} is empty, reserved or repeated"));
            }
        }
        for (f, b) in &self.boosts {
            if !self.fields.contains(f) {
                return bad(format!("boost for {f:?}, which is not a text field"));
            }
            if !(b.is_finite() && *b > 0.0) {
                return bad(format!("boost for {f:?} must be a positive number"));
            }
        }
        Ok(())
    }

    fn schema(&self) -> (Schema, Vec<Field>, Field) {
        let mut b = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let opts = TextOptions::default().set_indexing_options(indexing);
        let fields = self.fields.iter().map(|f| b.add_text_field(f, opts.clone())).collect();
        let slot = b.add_u64_field(SLOT, FAST);
        (b.build(), fields, slot)
    }
}

/// How query text is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Syntax {
    /// The query language ([`TextIndex::parse`]): a syntax error is an error.
    #[default]
    Query,
    /// Words only ([`TextIndex::parse_plain`]): any text is accepted, operators are ordinary characters.
    Plain,
}

impl std::str::FromStr for Syntax {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "query" => Ok(Syntax::Query),
            "plain" => Ok(Syntax::Plain),
            _ => Err(Error::InvalidQuery(format!("syntax must be \"query\" or \"plain\", not {s:?}"))),
        }
    }
}

/// A parsed text query, valid for every index of the same [`TextConfig`].
pub struct TextQuery {
    query: Box<dyn Query>,
    /// The text as given (for snippets).
    pub text: String,
}

impl std::fmt::Debug for TextQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextQuery").field("text", &self.text).finish_non_exhaustive()
    }
}

/// The tantivy index of one set of points.
pub struct TextIndex {
    config: TextConfig,
    index: Index,
    reader: IndexReader,
    fields: Vec<Field>,
    slot: Field,
    /// Only for the memtable's index: pending documents and whether a refresh is due.
    writer: Option<Mutex<(IndexWriter<TantivyDocument>, bool)>>,
}

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextIndex").field("fields", &self.config.fields).finish_non_exhaustive()
    }
}

fn tv(e: impl std::fmt::Display) -> Error {
    Error::Text(e.to_string())
}

impl TextIndex {
    fn new(index: Index, config: &TextConfig, writable: bool) -> Result<Self> {
        index.tokenizers().register(TOKENIZER, config.analyzer.build()?);
        let (_, fields, slot) = config.schema();
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(tv)?;
        let writer = if writable {
            Some(Mutex::new((index.writer_with_num_threads(1, WRITER_BYTES).map_err(tv)?, false)))
        } else {
            None
        };
        Ok(Self { config: config.clone(), index, reader, fields, slot, writer })
    }

    fn document(&self, slot: u32, text: &Value) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_u64(self.slot, u64::from(slot));
        for (name, field) in self.config.fields.iter().zip(&self.fields) {
            if let Some(s) = text.get(name).and_then(Value::as_str) {
                doc.add_text(*field, s);
            }
        }
        doc
    }

    /// Builds an immutable index in `dir` (created) from `texts[slot]`, fsynced.
    pub fn build(dir: &Path, config: &TextConfig, texts: &[Value]) -> Result<Self> {
        fs_err::create_dir_all(dir).map_err(naksha_storage::Error::from)?;
        let (schema, _, _) = config.schema();
        let index = Index::create_in_dir(dir, schema).map_err(tv)?;
        let mut this = Self::new(index, config, true)?;
        {
            let mut w = this.writer.take().map(Mutex::into_inner).ok_or_else(|| tv("no writer"))?;
            for (slot, text) in texts.iter().enumerate() {
                w.0.add_document(this.document(slot as u32, text)).map_err(tv)?;
            }
            w.0.commit().map_err(tv)?;
            w.0.wait_merging_threads().map_err(tv)?;
        }
        this.reader.reload().map_err(tv)?;
        Ok(this)
    }

    /// Opens the index built by [`TextIndex::build`] in `dir`.
    pub fn open(dir: &Path, config: &TextConfig) -> Result<Self> {
        let index = Index::open_in_dir(dir).map_err(tv)?;
        let this = Self::new(index, config, false)?;
        this.reader.reload().map_err(tv)?;
        Ok(this)
    }

    /// An empty in-memory index that [`TextIndex::append`] adds to.
    pub fn in_memory(config: &TextConfig) -> Result<Self> {
        let (schema, _, _) = config.schema();
        Self::new(Index::create_in_ram(schema), config, true)
    }

    /// Adds the point at `slot` (in-memory indexes only). Searchable after the
    /// next [`TextIndex::refresh`], which [`search`] does.
    pub fn append(&self, slot: u32, text: &Value) -> Result<()> {
        let w = self.writer.as_ref().ok_or_else(|| tv("append on an immutable text index"))?;
        let mut w = w.lock();
        w.0.add_document(self.document(slot, text)).map_err(tv)?;
        w.1 = true;
        Ok(())
    }

    /// Makes appended documents searchable.
    pub fn refresh(&self) -> Result<()> {
        if let Some(w) = &self.writer {
            let mut w = w.lock();
            if w.1 {
                w.0.commit().map_err(tv)?;
                self.reader.reload().map_err(tv)?;
                w.1 = false;
            }
        }
        Ok(())
    }

    /// Parses `text` in the query language: words (any may match), `"phrases"`,
    /// `+required`, `-excluded`, `field:word`, `AND`/`OR`, with the config's boosts.
    pub fn parse(&self, text: &str) -> Result<TextQuery> {
        let mut parser = QueryParser::for_index(&self.index, self.fields.clone());
        for (name, field) in self.config.fields.iter().zip(&self.fields) {
            if let Some(b) = self.config.boosts.get(name) {
                parser.set_field_boost(*field, *b);
            }
        }
        let query = parser.parse_query(text).map_err(|e| Error::InvalidQuery(format!("text query: {e}")))?;
        Ok(TextQuery { query, text: text.to_owned() })
    }

    /// Parses `text` in the given [`Syntax`].
    pub fn parse_as(&self, text: &str, syntax: Syntax) -> Result<TextQuery> {
        match syntax {
            Syntax::Query => self.parse(text),
            Syntax::Plain => self.parse_plain(text),
        }
    }

    /// Reads `text` as plain words: every term the analyzer makes, in every
    /// field (with its boost), any may match. Never a syntax error, so prose
    /// (`doesn't`, `C++:`, unbalanced brackets) is searchable as typed.
    pub fn parse_plain(&self, text: &str) -> Result<TextQuery> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (name, field) in self.config.fields.iter().zip(&self.fields) {
            let mut analyzer = self.index.tokenizer_for_field(*field).map_err(tv)?;
            let mut stream = analyzer.token_stream(text);
            let mut terms = std::collections::BTreeSet::new();
            while let Some(token) = stream.next() {
                terms.insert(token.text.clone());
            }
            let boost = self.config.boosts.get(name).copied().unwrap_or(1.0);
            for t in terms {
                let q = TermQuery::new(Term::from_field_text(*field, &t), IndexRecordOption::WithFreqs);
                let q: Box<dyn Query> =
                    if boost == 1.0 { Box::new(q) } else { Box::new(BoostQuery::new(Box::new(q), boost)) };
                clauses.push((Occur::Should, q));
            }
        }
        Ok(TextQuery { query: Box::new(BooleanQuery::new(clauses)), text: text.to_owned() })
    }

    /// Highlighted fragment of `text` for `field`, matched words in `<b>`.
    pub fn snippet(&self, query: &TextQuery, field: &str, text: &str) -> Result<String> {
        let Some(pos) = self.config.fields.iter().position(|f| f == field) else { return Ok(String::new()) };
        let searcher = self.reader.searcher();
        let mut g = SnippetGenerator::create(&searcher, &*query.query, self.fields[pos]).map_err(tv)?;
        g.set_max_num_chars(200);
        Ok(g.snippet(text).to_html())
    }
}

/// One index to search and the slots it may return (`None`: all).
#[derive(Debug)]
pub struct Part<'a> {
    /// The index.
    pub index: &'a TextIndex,
    /// Admitted slots (live and passing the filter).
    pub admitted: Option<Arc<Bitset>>,
}

/// BM25 statistics summed over several searchers.
struct Global<'a>(&'a [Searcher]);

impl Bm25StatisticsProvider for Global<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        self.0.iter().map(|s| Bm25StatisticsProvider::total_num_tokens(s, field)).sum()
    }
    fn total_num_docs(&self) -> tantivy::Result<u64> {
        self.0.iter().map(Bm25StatisticsProvider::total_num_docs).sum()
    }
    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        self.0.iter().map(|s| Bm25StatisticsProvider::doc_freq(s, term)).sum()
    }
}

/// The best `k` admitted hits of `query` in each part, as `(score, slot)`,
/// best first, scored with BM25 statistics of all parts together.
pub fn search(parts: &[Part<'_>], query: &TextQuery, k: usize) -> Result<Vec<Vec<(f32, u32)>>> {
    for p in parts {
        p.index.refresh()?;
    }
    let searchers: Vec<Searcher> = parts.iter().map(|p| p.index.reader.searcher()).collect();
    let stats = Global(&searchers);
    parts
        .iter()
        .zip(&searchers)
        .map(|(p, searcher)| {
            let admitted = p.admitted.clone();
            // Rejected documents sink below every real score; BM25 scores are >= 0.
            let collector = TopDocs::with_limit(k.max(1)).tweak_score(move |seg: &tantivy::SegmentReader| {
                let slots = seg.fast_fields().u64(SLOT).ok().map(|c| c.first_or_default_col(u64::MAX));
                let admitted = admitted.clone();
                move |doc: tantivy::DocId, score: tantivy::Score| {
                    let slot = slots.as_ref().map_or(u64::MAX, |c| c.get_val(doc));
                    let ok = slot != u64::MAX && admitted.as_ref().is_none_or(|a| a.contains(slot as usize));
                    if ok {
                        (score, slot as u32)
                    } else {
                        (f32::NEG_INFINITY, u32::MAX)
                    }
                }
            });
            let hits = searcher.search_with_statistics_provider(&*query.query, &collector, &stats).map_err(tv)?;
            Ok(hits.into_iter().map(|((score, slot), _)| (score, slot)).filter(|(s, _)| s.is_finite()).collect())
        })
        .collect()
}
