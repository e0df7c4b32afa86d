//! `naksha-rag`: grounded answers with citations, over `naksha-query`'s public
//! API only (search, get, the collection's embedding model). The engine below
//! knows nothing of generators or HTTP clients; this crate owns both.
//!
//! ```text
//! question ─ embed ─ hybrid search (plain words, filter) ─ candidates
//!          ─ drop near-duplicates ─ MMR (relevance vs. redundancy) ─ pack into max_context_tokens
//!          ─ generate (extractive | OpenAI-compatible) ─ answer + citations
//! ```
//!
//! | file            | job                                                        |
//! |-----------------|------------------------------------------------------------|
//! | `lib.rs`        | request, answer and event types; the pipeline ([`Rag`])    |
//! | `error.rs`      | this crate's error, classified as `naksha_query::ErrorKind` |
//! | `context.rs`    | retrieval, de-duplication, MMR, packing into the budget    |
//! | `extractive.rs` | the default generator: best sentences, each one cited      |
//! | `openai.rs`     | chat-completions client (streaming, retries, timeouts)     |
//!
//! A citation's `start`/`end` are character offsets into its document: for a
//! chunk written by `Collection::upsert_documents` the document's text (the
//! chunk's payload `start` is added), for any other point the text field quoted,
//! with `doc_id` the point id. `text` is exactly that span.
//!
//! Token budgets are counted with the collection model's tokenizer, without
//! special tokens or truncation (`Embedder::count_tokens`); the
//! budget covers the context passages, not the question or the prompt around them.

mod context;
mod error;
mod extractive;
mod openai;

use std::time::Instant;

use std::sync::Arc;

use naksha_query::embed::Embedder;
use naksha_query::{Collection, Filter, PointId};
use serde::{Deserialize, Serialize};

pub use context::Passage;
pub use error::{Error, Result};
pub use openai::OpenAiConfig;

/// Most contexts a request may ask for.
pub const MAX_CONTEXTS: usize = 50;
/// Largest context budget, in tokens.
pub const MAX_CONTEXT_TOKENS: usize = 32_768;
/// Smallest useful context budget, in tokens.
pub const MIN_CONTEXT_TOKENS: usize = 16;

/// Which generator writes the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum GeneratorConfig {
    /// No LLM: the sentences of the contexts that best answer the question, each cited.
    Extractive {
        /// Most sentences in the answer.
        #[serde(default = "default_sentences")]
        max_sentences: usize,
    },
    /// Any OpenAI-compatible chat-completions endpoint.
    Openai(OpenAiConfig),
}

/// Sentences in an extractive answer unless a request says otherwise.
pub const DEFAULT_MAX_SENTENCES: usize = 3;

fn default_sentences() -> usize {
    DEFAULT_MAX_SENTENCES
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig::Extractive { max_sentences: default_sentences() }
    }
}

/// A question for [`Rag::rag`].
#[derive(Clone, Debug)]
pub struct RagRequest {
    /// The question, in plain words.
    pub question: String,
    /// Most context passages given to the generator.
    pub limit: usize,
    /// Token budget for the context passages.
    pub max_context_tokens: usize,
    /// Payload filter applied at retrieval.
    pub filter: Option<Filter>,
    /// Who writes the answer.
    pub generator: GeneratorConfig,
}

impl RagRequest {
    /// A question with the defaults: 8 contexts, 1,500 tokens, extractive.
    pub fn new(question: impl Into<String>) -> Self {
        Self {
            question: question.into(),
            limit: 8,
            max_context_tokens: 1500,
            filter: None,
            generator: GeneratorConfig::default(),
        }
    }

    /// Refuses settings that cannot work (also done by [`Rag::rag`]).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.question.trim().is_empty() {
            return bad("question is empty".into());
        }
        if !(1..=MAX_CONTEXTS).contains(&self.limit) {
            return bad(format!("limit must be between 1 and {MAX_CONTEXTS}, not {}", self.limit));
        }
        if !(MIN_CONTEXT_TOKENS..=MAX_CONTEXT_TOKENS).contains(&self.max_context_tokens) {
            return bad(format!(
                "max_context_tokens must be between {MIN_CONTEXT_TOKENS} and {MAX_CONTEXT_TOKENS}, not {}",
                self.max_context_tokens
            ));
        }
        if let Some(f) = &self.filter {
            f.validate()?;
        }
        match &self.generator {
            GeneratorConfig::Extractive { max_sentences } if !(1..=20).contains(max_sentences) => {
                bad(format!("generator.max_sentences must be between 1 and 20, not {max_sentences}"))
            }
            GeneratorConfig::Extractive { .. } => Ok(()),
            GeneratorConfig::Openai(c) => c.validate(),
        }
    }
}

/// A quoted span that supports the answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Citation {
    /// The point quoted.
    pub id: PointId,
    /// Its document (a chunk's `doc_id`, else the point id).
    pub doc_id: String,
    /// The text field quoted (`text` for a document's chunk).
    pub field: String,
    /// First character of the span in the document.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// The quoted text (exactly the span).
    pub text: String,
    /// How strongly it supports the answer (extractive: sentence score; openai: retrieval score).
    pub score: f32,
}

/// What [`Rag::rag`] returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RagAnswer {
    /// The answer; `[n]` marks refer to `citations[n-1]`. Empty when nothing relevant was found.
    pub answer: String,
    /// Supporting spans, in the order the answer cites them.
    pub citations: Vec<Citation>,
    /// Context passages given to the generator.
    pub contexts: usize,
    /// Tokens in those passages (at most `max_context_tokens`).
    pub context_tokens: usize,
    /// Time taken, in milliseconds.
    pub took_ms: f64,
}

/// Streamed progress of [`Rag::rag_stream`].
#[derive(Clone, Debug, PartialEq)]
pub enum RagEvent {
    /// Next piece of the answer.
    Token(String),
    /// The citations, once the answer is complete.
    Citations(Vec<Citation>),
}

/// Receives events; returns `false` to stop the work (the client went away).
pub type Sink<'a> = &'a mut dyn FnMut(RagEvent) -> bool;

/// RAG over a collection: `use naksha_rag::Rag` and call these on a
/// [`Collection`]. Blocking: retrieval, embedding and the generator's HTTP call
/// all run on the caller's thread.
pub trait Rag {
    /// Answers `req` from this collection's points.
    fn rag(&self, req: &RagRequest) -> Result<RagAnswer>;

    /// [`Rag::rag`], sending the answer to `sink` as it is written, then the
    /// citations. If `sink` returns `false` the work stops with
    /// [`Error::Cancelled`]; an OpenAI-compatible generator streams from its server.
    fn rag_stream(&self, req: &RagRequest, sink: Sink<'_>) -> Result<RagAnswer>;

    /// Refuses `req` as [`Rag::rag`] would before doing any work: bad settings,
    /// or a collection without an embedding model. For front ends that must
    /// answer with an error before they start streaming.
    fn check_rag(&self, req: &RagRequest) -> Result<()>;

    /// The context passages [`Rag::rag`] would give its generator, in order,
    /// within `req.max_context_tokens`: for callers with their own generator.
    fn rag_context(&self, req: &RagRequest) -> Result<Vec<Passage>>;
}

impl Rag for Collection {
    fn rag(&self, req: &RagRequest) -> Result<RagAnswer> {
        run(self, req, false, &mut |_| true)
    }

    fn rag_stream(&self, req: &RagRequest, sink: Sink<'_>) -> Result<RagAnswer> {
        run(self, req, true, sink)
    }

    fn check_rag(&self, req: &RagRequest) -> Result<()> {
        req.validate()?;
        model(self).map(|_| ())
    }

    fn rag_context(&self, req: &RagRequest) -> Result<Vec<Passage>> {
        req.validate()?;
        let model = model(self)?;
        let question = model.embed(&[req.question.as_str()])?.pop().unwrap_or_default();
        passages(self, req, &model, &question)
    }
}

fn run(c: &Collection, req: &RagRequest, stream: bool, sink: Sink<'_>) -> Result<RagAnswer> {
    let started = Instant::now();
    req.validate()?;
    let model = model(c)?;
    let question = model.embed(&[req.question.as_str()])?.pop().unwrap_or_default();
    let passages = passages(c, req, &model, &question)?;
    let context_tokens = passages.iter().map(|p| p.tokens).sum();
    let (answer, citations) = if passages.is_empty() {
        (String::new(), Vec::new())
    } else {
        match &req.generator {
            GeneratorConfig::Extractive { max_sentences } => {
                extractive::answer(&model, &req.question, &question, &passages, *max_sentences, sink)?
            }
            GeneratorConfig::Openai(cfg) => openai::answer(cfg, &req.question, &passages, stream, sink)?,
        }
    };
    if !sink(RagEvent::Citations(citations.clone())) {
        return Err(Error::Cancelled);
    }
    Ok(RagAnswer {
        answer,
        citations,
        contexts: passages.len(),
        context_tokens,
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// The collection's embedding model (RAG ranks and counts tokens with it).
fn model(c: &Collection) -> Result<Arc<Embedder>> {
    c.embedder().map(|(model, _)| model).map_err(|_| {
        Error::InvalidArgument(format!(
            "collection {:?} has no embedding model (embed): RAG needs one to rank and count tokens",
            c.name()
        ))
    })
}

fn passages(c: &Collection, req: &RagRequest, model: &Embedder, question: &[f32]) -> Result<Vec<Passage>> {
    let candidates = context::candidates(c, req, question)?;
    context::pack(model, context::select(candidates, req.limit), req.max_context_tokens)
}

/// Character offset of byte `b` in `s`.
fn char_offset(s: &str, b: usize) -> usize {
    s[..b].chars().count()
}
