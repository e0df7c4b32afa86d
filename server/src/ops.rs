//! The request model shared by the HTTP and gRPC front ends: each front end
//! converts its wire form into these types in one place (`http::*` by serde,
//! `grpc::convert` from the protobuf messages), and the defaults (limits,
//! context budgets, generator) are defined here once, so both refuse and accept
//! exactly the same things.

use std::collections::BTreeMap;

use naksha_query::embed::{ChunkConfig, Models};
use naksha_query::{
    Analyzer, Collection, CollectionConfig, Document, DocumentsWritten, EmbedConfig, FieldType, Filter, Fusion,
    HnswConfig, Metric, Mode, Point, PointId, Quantization, SearchRequest, Syntax, VectorsConfig,
};
use naksha_rag::{GeneratorConfig, RagRequest};
use serde::Deserialize;
use serde_json::Value;

use crate::schema;

use crate::error::ApiError;
use crate::tenancy::Ctx;

/// The vector space in a collection body; with `embed`, `dim` (the model's) and
/// `metric` (cosine) may be omitted.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VectorsBody {
    /// Dimension, 1 to 65,536 (default with `embed`: the model's).
    #[schema(minimum = 1, maximum = 65536)]
    pub dim: Option<usize>,
    /// `cosine`, `dot` or `l2` (default with `embed`: cosine).
    #[schema(value_type = Option<schema::Metric>)]
    pub metric: Option<Metric>,
    /// Graph parameters.
    #[schema(value_type = Option<schema::HnswConfig>)]
    pub hnsw: Option<HnswConfig>,
    /// `none` (default) or `int8`.
    #[schema(value_type = Option<schema::Quantization>)]
    pub quantization: Option<Quantization>,
}

/// The API's collection body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"embed": {"model": "all-minilm-l6-v2", "fields": ["title", "body"]},
    "text_fields": ["title", "body"], "payload_index": {"lang": "keyword"}}))]
pub struct CreateBody {
    /// The vector space (may be omitted with `embed`).
    pub vectors: Option<VectorsBody>,
    /// Text fields indexed for BM25 (query modes `text` and `hybrid`).
    #[serde(default)]
    pub text_fields: Vec<String>,
    /// How text fields are cut into terms (default: English, stop words, stemming).
    #[schema(value_type = Option<schema::Analyzer>)]
    pub text_analyzer: Option<Analyzer>,
    /// Score multiplier per text field, e.g. `{"title": 2.0}`.
    #[serde(default)]
    pub text_boosts: BTreeMap<String, f32>,
    /// Fill vectors from these text fields with this model.
    #[schema(value_type = Option<schema::EmbedConfig>)]
    pub embed: Option<EmbedConfig>,
    /// How the documents endpoint cuts texts into chunks.
    #[schema(value_type = Option<schema::ChunkConfig>)]
    pub chunking: Option<ChunkConfig>,
    /// Payload keys (dotted paths) to index, with their type.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, schema::FieldType>)]
    pub payload_index: BTreeMap<String, FieldType>,
}

/// Decode a JSON request body; the parser's message names the problem.
pub fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))
}

/// A collection body as an engine configuration, the defaults filled in;
/// `models` supplies the dimension of an `embed` model when `vectors.dim` is omitted.
pub fn collection_config(body: CreateBody, models: &Models) -> Result<CollectionConfig, ApiError> {
    let v = match (body.vectors, &body.embed) {
        (Some(v), _) => v,
        (None, Some(_)) => VectorsBody::default(),
        (None, None) => return Err(ApiError::invalid("vectors is required (or embed, to take the model's)")),
    };
    let dim = match (v.dim, &body.embed) {
        (Some(d), _) => d,
        (None, Some(e)) => models.get(&e.model).map_err(naksha_query::Error::from)?.dim(),
        (None, None) => return Err(ApiError::invalid("vectors.dim is required")),
    };
    let metric = match (v.metric, &body.embed) {
        (Some(m), _) => m,
        (None, Some(_)) => Metric::Cosine,
        (None, None) => return Err(ApiError::invalid("vectors.metric is required")),
    };
    let vectors = VectorsConfig {
        dim,
        metric,
        hnsw: v.hnsw.unwrap_or_default(),
        quantization: v.quantization.unwrap_or_default(),
    };
    Ok(CollectionConfig {
        vectors,
        payload_index: body.payload_index,
        embed: body.embed,
        chunking: body.chunking,
        text_fields: body.text_fields,
        text_analyzer: body.text_analyzer.unwrap_or_default(),
        text_boosts: body.text_boosts,
    })
}

/// The configuration as API JSON.
pub fn config_json(c: &CollectionConfig) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

/// Results a query returns unless it says otherwise.
pub const DEFAULT_QUERY_LIMIT: usize = 10;

fn default_limit() -> usize {
    DEFAULT_QUERY_LIMIT
}

fn yes() -> bool {
    true
}

/// A query.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "how do I read a file", "limit": 5, "filter": {"must": [{"key": "lang", "match": "en"}]}}))]
pub struct QueryBody {
    /// Query text: BM25 terms over `text_fields` (text, hybrid), and embedded with the
    /// collection's model for the vector side when no `vector` is given. BM25 syntax:
    /// words, `"phrases"`, `+required`, `-excluded`, `field:word`, `AND`/`OR`.
    pub text: Option<String>,
    /// Query vector.
    pub vector: Option<Vec<f32>>,
    /// `vector`, `text` (BM25) or `hybrid` (both, fused). Default: hybrid when both
    /// signals are available, else the one that is.
    #[schema(value_type = Option<schema::Mode>)]
    pub mode: Option<Mode>,
    /// How `text` is read for BM25: `query` (default; the syntax above, errors are 400s) or
    /// `plain` (words only: any text is accepted, operators are ordinary characters).
    #[schema(value_type = Option<schema::Syntax>)]
    pub syntax: Option<Syntax>,
    /// Payload filter, applied to every side before ranking.
    #[schema(value_type = Option<schema::Filter>)]
    pub filter: Option<Filter>,
    /// Results (default 10; limit + offset at most 10,000).
    #[serde(default = "default_limit")]
    #[schema(default = 10, minimum = 1, maximum = 10000)]
    pub limit: usize,
    /// Results to skip.
    #[serde(default)]
    #[schema(maximum = 10000)]
    pub offset: usize,
    /// Beam width (default: the collection's).
    #[schema(minimum = 1)]
    pub ef: Option<usize>,
    /// Search without the index (ground truth).
    #[serde(default)]
    pub exact: bool,
    /// Hybrid fusion (default RRF, k 60).
    #[schema(value_type = Option<schema::Fusion>)]
    pub fusion: Option<Fusion>,
    /// Return `highlights`: per text field, a fragment with matched terms in `<b>…</b>`.
    #[serde(default)]
    pub highlight: bool,
    /// Return payloads (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub with_payload: bool,
    /// Return text fields.
    #[serde(default)]
    pub with_text: bool,
    /// Return stored vectors.
    #[serde(default)]
    pub with_vector: bool,
}

impl QueryBody {
    /// A query with every default: `limit` 10, payloads returned, nothing else.
    pub fn new(text: Option<String>, vector: Option<Vec<f32>>) -> Self {
        Self {
            text,
            vector,
            mode: None,
            syntax: None,
            filter: None,
            limit: default_limit(),
            offset: 0,
            ef: None,
            exact: false,
            fusion: None,
            highlight: false,
            with_payload: true,
            with_text: false,
            with_vector: false,
        }
    }

    /// The engine's request; checks that need the collection are the engine's.
    pub fn into_request(self) -> Result<SearchRequest, ApiError> {
        let q = self;
        let text = match (q.text, &q.vector) {
            (Some(t), None) if t.trim().is_empty() => return Err(ApiError::invalid("query text is empty")),
            (None, None) => return Err(ApiError::invalid("give a query \"vector\" or \"text\"")),
            (t, _) => t,
        };
        let mut req = SearchRequest::new(q.vector.unwrap_or_default(), q.limit);
        req.text = text;
        req.mode = q.mode;
        req.fusion = q.fusion.unwrap_or_default();
        req.syntax = q.syntax.unwrap_or_default();
        req.filter = q.filter;
        req.offset = q.offset;
        req.ef = q.ef;
        req.exact = q.exact;
        req.with_payload = q.with_payload;
        req.with_vector = q.with_vector;
        req.with_text = q.with_text;
        req.highlight = q.highlight;
        Ok(req)
    }
}

/// Most context passages a RAG request gets unless it says otherwise.
pub const DEFAULT_RAG_LIMIT: usize = 8;
/// Token budget for RAG context passages unless a request says otherwise.
pub const DEFAULT_RAG_CONTEXT_TOKENS: usize = 1500;

fn default_rag_limit() -> usize {
    DEFAULT_RAG_LIMIT
}
fn default_budget() -> usize {
    DEFAULT_RAG_CONTEXT_TOKENS
}

/// A question.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"question": "How do I check a file's size?", "limit": 4}))]
pub struct RagBody {
    /// The question, in plain words.
    pub question: String,
    /// Most context passages (default 8, at most 50).
    #[serde(default = "default_rag_limit")]
    #[schema(default = 8, minimum = 1, maximum = 50)]
    pub limit: usize,
    /// Token budget for the passages, counted with the collection model's tokenizer (default 1500).
    #[serde(default = "default_budget")]
    #[schema(default = 1500, minimum = 16, maximum = 32768)]
    pub max_context_tokens: usize,
    /// Payload filter, as for queries.
    #[schema(value_type = Option<schema::Filter>)]
    pub filter: Option<Filter>,
    /// Who writes the answer (default: extractive, 3 sentences).
    #[schema(value_type = Option<schema::Generator>)]
    pub generator: Option<GeneratorConfig>,
    /// Reply with `text/event-stream`: `token` events, then `citations`, then `done`
    /// (HTTP only: gRPC always streams).
    #[serde(default)]
    pub stream: bool,
}

impl RagBody {
    /// A question with every default (8 passages, 1,500 tokens, extractive).
    pub fn new(question: String) -> Self {
        Self {
            question,
            limit: DEFAULT_RAG_LIMIT,
            max_context_tokens: DEFAULT_RAG_CONTEXT_TOKENS,
            filter: None,
            generator: None,
            stream: false,
        }
    }

    /// The engine's request. An `openai` generator may only call hosts in
    /// `allowed_hosts` (`*`: any), so a client cannot point the server, and the
    /// API key it holds, at a host of its choosing. The rest is checked by the
    /// pipeline (`Rag::rag`, or `Rag::check_rag` before a stream).
    pub fn into_request(self, allowed_hosts: &[String]) -> Result<RagRequest, ApiError> {
        let generator = self.generator.unwrap_or_default();
        if let GeneratorConfig::Openai(o) = &generator {
            let host = o.host();
            let name = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or_default(),
                None => host.rsplit_once(':').map_or(host, |(h, _)| h),
            };
            if !allowed_hosts.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(name)) {
                return Err(ApiError::invalid(format!(
                    "generator: host {name:?} is not in the server's server.generator_hosts ({allowed_hosts:?})"
                )));
            }
        }
        Ok(RagRequest {
            question: self.question,
            limit: self.limit,
            max_context_tokens: self.max_context_tokens,
            filter: self.filter,
            generator,
        })
    }
}

/// Points to delete: exactly one of `ids`, a non-empty `filter`, or `"all": true`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"filter": {"must": [{"key": "lang", "match": "fr"}]}}))]
pub struct DeleteBody {
    /// Ids (missing ones are ignored).
    #[schema(value_type = Option<Vec<schema::PointId>>)]
    pub ids: Option<Vec<PointId>>,
    /// A filter in the query's filter language, with at least one condition.
    #[schema(value_type = Option<schema::Filter>)]
    pub filter: Option<Filter>,
    /// `true` deletes every point of the collection (an empty filter is refused).
    pub all: Option<bool>,
}

impl DeleteBody {
    /// Delete the selected points of `c`; returns how many existed.
    pub fn apply(self, c: &Collection) -> Result<usize, ApiError> {
        Ok(match (self.ids, self.filter, self.all) {
            (Some(ids), None, None) => c.delete(ids)?,
            (None, Some(f), None) => c.delete_where(&f)?,
            (None, None, Some(true)) => c.delete_all()?,
            _ => return Err(ApiError::invalid("give exactly one of \"ids\", \"filter\" or \"all\": true")),
        })
    }
}

/// Most texts one `embed` call takes.
pub const MAX_EMBED_INPUTS: usize = 2048;

/// Embed `input` with `model`: returns the dimension and one vector per text.
/// Blocking (run it on the blocking pool).
pub fn embed(models: &Models, model: &str, input: &[String]) -> Result<(usize, Vec<Vec<f32>>), ApiError> {
    if input.is_empty() || input.len() > MAX_EMBED_INPUTS {
        return Err(ApiError::invalid(format!("input must hold 1 to {MAX_EMBED_INPUTS} texts, not {}", input.len())));
    }
    let m = models.get(model)?;
    let refs: Vec<&str> = input.iter().map(String::as_str).collect();
    Ok((m.dim(), m.embed(&refs)?))
}

/// Tokens `model` reads from `texts`.
fn tokens<'a>(
    model: &naksha_query::embed::Embedder,
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<u64, ApiError> {
    let texts: Vec<&str> = texts.into_iter().collect();
    Ok(model.token_counts(&texts)?.into_iter().sum::<usize>() as u64)
}

/// Upsert points into a tenant's collection within its quotas; returns the
/// count and the durable batch's sequence number. Points without a vector are
/// embedded by the collection's model and charged as embedding tokens.
pub fn upsert_points(ctx: &Ctx, name: &str, points: Vec<Point>) -> Result<(usize, u64), ApiError> {
    let c = ctx.collection(name)?;
    let _admitted = ctx.admit(|| Ok(crate::tenancy::new_points(&c, points.iter().map(|p| p.id.clone()))))?;
    if let Ok((model, _)) = c.embedder() {
        let texts = points
            .iter()
            .filter(|p| p.vector.is_empty())
            .flat_map(|p| p.text.as_object().into_iter().flat_map(|m| m.values().filter_map(Value::as_str)));
        let n = tokens(&model, texts)?;
        if n > 0 {
            ctx.charge_embed(n)?;
        }
    }
    let n = points.len();
    Ok((n, c.upsert(points)?))
}

/// Chunk, embed and store documents within the tenant's quotas.
pub fn upsert_documents(ctx: &Ctx, name: &str, docs: Vec<Document>) -> Result<DocumentsWritten, ApiError> {
    let c = ctx.collection(name)?;
    let (model, _) = c.embedder()?;
    let added = || {
        let chunking = c.config().chunking.unwrap_or_default();
        let mut added = 0u64;
        for d in &docs {
            let chunks = model.chunk(&d.text, chunking)?.len();
            let existing = (0..).take_while(|n| c.contains(&PointId::Str(format!("{}#{n}", d.id)))).count();
            added += chunks.saturating_sub(existing) as u64;
        }
        Ok(added)
    };
    let _admitted = ctx.admit(added)?;
    let texts = docs.iter().flat_map(|d| std::iter::once(d.text.as_str()).chain(d.title.as_deref()));
    ctx.charge_embed(tokens(&model, texts)?)?;
    Ok(c.upsert_documents(docs)?)
}

/// Search a tenant's collection; a query text the collection's model embeds is charged.
pub fn search(ctx: &Ctx, name: &str, req: &SearchRequest) -> Result<Vec<naksha_query::ScoredPoint>, ApiError> {
    let c = ctx.collection(name)?;
    charge_query_text(
        ctx,
        &c,
        req.text.as_deref(),
        req.vector.is_empty() && req.mode != Some(naksha_query::Mode::Text),
    )?;
    Ok(c.search(req)?)
}

/// Charge the tokens of a query or question the collection's model will embed.
pub fn charge_query_text(
    ctx: &Ctx,
    c: &naksha_query::Collection,
    text: Option<&str>,
    embedded: bool,
) -> Result<(), ApiError> {
    if let (Some(text), true, Ok((model, _))) = (text, embedded, c.embedder()) {
        ctx.charge_embed(tokens(&model, [text])?)?;
    }
    Ok(())
}

/// Embed texts with a model, charged to the tenant.
pub fn embed_for(ctx: &Ctx, model: &str, input: &[String]) -> Result<(usize, Vec<Vec<f32>>), ApiError> {
    let db = ctx.db()?;
    if let Ok(m) = db.models().get(model) {
        if !input.is_empty() && input.len() <= MAX_EMBED_INPUTS {
            ctx.charge_embed(tokens(&m, input.iter().map(String::as_str))?)?;
        }
    }
    embed(db.models(), model, input)
}
