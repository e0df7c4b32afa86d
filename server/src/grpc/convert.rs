//! The one place protobuf messages become the shared request model
//! ([`crate::ops`]) and engine results become messages. Defaults are not
//! repeated here: an unset field becomes `None` and the model fills it in.

use std::collections::BTreeMap;

use naksha_query::embed::ChunkConfig;
use naksha_query::filter::{Condition, FieldTest, NumRange};
use naksha_query::hybrid::{DEFAULT_RRF_K, DEFAULT_VECTOR_WEIGHT};
use naksha_query::{
    Analyzer, AnalyzerKind, CollectionConfig, Document, EmbedConfig, FieldType, Filter, Fusion, HealthStatus,
    HnswConfig, Metric, Mode, Point, PointId, Quantization, ScoredPoint, Syntax, TextLanguage,
};
use naksha_rag::{Citation, GeneratorConfig, OpenAiConfig, DEFAULT_MAX_SENTENCES};
use prost_types::value::Kind as PbKind;
use serde_json::{Map, Number, Value};

use super::pb;
use crate::error::ApiError;
use crate::ops::{CreateBody, DeleteBody, QueryBody, RagBody, VectorsBody};

type Result<T> = std::result::Result<T, ApiError>;

// ------------------------------------------------------------ ids and values

pub(super) fn id_from_pb(id: Option<pb::PointId>) -> Result<PointId> {
    match id.and_then(|i| i.kind) {
        Some(pb::point_id::Kind::Num(n)) => Ok(PointId::Num(n)),
        Some(pb::point_id::Kind::Str(s)) => Ok(PointId::Str(s)),
        None => Err(ApiError::invalid("point id is required")),
    }
}

pub(super) fn id_to_pb(id: PointId) -> pb::PointId {
    let kind = match id {
        PointId::Num(n) => pb::point_id::Kind::Num(n),
        PointId::Str(s) => pb::point_id::Kind::Str(s),
    };
    pb::PointId { kind: Some(kind) }
}

/// Integers travel as doubles in `google.protobuf.Value`; integral values
/// within ±2^53 (exact in a double) come back as JSON integers.
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

fn number(x: f64, what: &str) -> Result<Value> {
    if x.is_finite() && x.fract() == 0.0 && x.abs() <= EXACT_INT {
        return Ok(Value::from(x as i64));
    }
    Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| ApiError::invalid(format!("{what}: {x} is not a finite number")))
}

fn value_from_pb(v: prost_types::Value, what: &str) -> Result<Value> {
    Ok(match v.kind {
        None | Some(PbKind::NullValue(_)) => Value::Null,
        Some(PbKind::BoolValue(b)) => Value::Bool(b),
        Some(PbKind::NumberValue(x)) => number(x, what)?,
        Some(PbKind::StringValue(s)) => Value::String(s),
        Some(PbKind::ListValue(l)) => list_from_pb(l, what)?,
        Some(PbKind::StructValue(s)) => struct_from_pb(s, what)?,
    })
}

fn list_from_pb(l: prost_types::ListValue, what: &str) -> Result<Value> {
    Ok(Value::Array(l.values.into_iter().map(|v| value_from_pb(v, what)).collect::<Result<_>>()?))
}

fn struct_from_pb(s: prost_types::Struct, what: &str) -> Result<Value> {
    let map = s.fields.into_iter().map(|(k, v)| Ok((k, value_from_pb(v, what)?))).collect::<Result<Map<_, _>>>()?;
    Ok(Value::Object(map))
}

/// A payload: an unset struct is no payload (`null`).
fn payload_from_pb(s: Option<prost_types::Struct>) -> Result<Value> {
    s.map_or(Ok(Value::Null), |s| struct_from_pb(s, "payload"))
}

fn value_to_pb(v: Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => PbKind::NullValue(0),
        Value::Bool(b) => PbKind::BoolValue(b),
        Value::Number(n) => PbKind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => PbKind::StringValue(s),
        Value::Array(a) => {
            PbKind::ListValue(prost_types::ListValue { values: a.into_iter().map(value_to_pb).collect() })
        }
        Value::Object(o) => PbKind::StructValue(struct_to_pb(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn struct_to_pb(o: Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct { fields: o.into_iter().map(|(k, v)| (k, value_to_pb(v))).collect() }
}

/// A stored payload (an object, or null for none).
pub(super) fn payload_to_pb(v: Value) -> Option<prost_types::Struct> {
    match v {
        Value::Object(o) => Some(struct_to_pb(o)),
        _ => None,
    }
}

fn text_from_pb(t: std::collections::HashMap<String, String>) -> Value {
    if t.is_empty() {
        return Value::Null;
    }
    Value::Object(t.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

/// Text fields as a map (stored text fields are strings).
pub(super) fn text_to_pb(v: Value) -> std::collections::HashMap<String, String> {
    match v {
        Value::Object(o) => o
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        _ => Default::default(),
    }
}

// ---------------------------------------------------------------- collections

fn enum_value<E: TryFrom<i32>>(v: i32, what: &str) -> Result<E> {
    E::try_from(v).map_err(|_| ApiError::invalid(format!("{what}: unknown enum value {v}")))
}

fn metric_from_pb(v: i32) -> Result<Option<Metric>> {
    Ok(match enum_value(v, "vectors.metric")? {
        pb::Metric::Unspecified => None,
        pb::Metric::Cosine => Some(Metric::Cosine),
        pb::Metric::Dot => Some(Metric::Dot),
        pb::Metric::L2 => Some(Metric::L2),
    })
}

fn metric_to_pb(m: Metric) -> pb::Metric {
    match m {
        Metric::Cosine => pb::Metric::Cosine,
        Metric::Dot => pb::Metric::Dot,
        Metric::L2 => pb::Metric::L2,
    }
}

fn quantization_from_pb(v: i32) -> Result<Option<Quantization>> {
    Ok(match enum_value(v, "vectors.quantization")? {
        pb::Quantization::Unspecified => None,
        pb::Quantization::None => Some(Quantization::None),
        pb::Quantization::Int8 => Some(Quantization::Int8),
    })
}

fn field_type_from_pb(key: &str, v: i32) -> Result<FieldType> {
    match enum_value(v, "payload_index")? {
        pb::FieldType::Unspecified => Err(ApiError::invalid(format!("payload_index {key:?}: the type is required"))),
        pb::FieldType::Keyword => Ok(FieldType::Keyword),
        pb::FieldType::Integer => Ok(FieldType::Integer),
        pb::FieldType::Float => Ok(FieldType::Float),
        pb::FieldType::Bool => Ok(FieldType::Bool),
    }
}

fn field_type_to_pb(t: FieldType) -> pb::FieldType {
    match t {
        FieldType::Keyword => pb::FieldType::Keyword,
        FieldType::Integer => pb::FieldType::Integer,
        FieldType::Float => pb::FieldType::Float,
        FieldType::Bool => pb::FieldType::Bool,
    }
}

fn language_from_pb(s: &str) -> Result<TextLanguage> {
    if s.is_empty() {
        return Ok(TextLanguage::default());
    }
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|_| ApiError::invalid(format!("text_analyzer.language: unknown language {s:?}")))
}

fn analyzer_from_pb(a: pb::TextAnalyzer) -> Result<Analyzer> {
    let d = Analyzer::default();
    let kind = match enum_value(a.kind, "text_analyzer.kind")? {
        pb::AnalyzerKind::Unspecified => d.kind,
        pb::AnalyzerKind::Language => AnalyzerKind::Language,
        pb::AnalyzerKind::Simple => AnalyzerKind::Simple,
        pb::AnalyzerKind::Whitespace => AnalyzerKind::Whitespace,
    };
    Ok(Analyzer {
        kind,
        language: language_from_pb(&a.language)?,
        stop_words: a.stop_words.unwrap_or(d.stop_words),
        stemming: a.stemming.unwrap_or(d.stemming),
    })
}

fn analyzer_to_pb(a: Analyzer) -> pb::TextAnalyzer {
    let kind = match a.kind {
        AnalyzerKind::Language => pb::AnalyzerKind::Language,
        AnalyzerKind::Simple => pb::AnalyzerKind::Simple,
        AnalyzerKind::Whitespace => pb::AnalyzerKind::Whitespace,
    };
    let language =
        serde_json::to_value(a.language).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    pb::TextAnalyzer { kind: kind as i32, language, stop_words: Some(a.stop_words), stemming: Some(a.stemming) }
}

fn usize_of(v: u32) -> usize {
    v as usize
}

/// A collection config message as the shared collection body.
pub(super) fn create_body(c: Option<pb::CollectionConfig>) -> Result<CreateBody> {
    let c = c.ok_or_else(|| ApiError::invalid("config is required"))?;
    let vectors = match c.vectors {
        None => None,
        Some(v) => Some(VectorsBody {
            dim: v.dim.map(usize_of),
            metric: metric_from_pb(v.metric)?,
            hnsw: v.hnsw.map(|h| {
                let d = HnswConfig::default();
                HnswConfig {
                    m: h.m.map_or(d.m, usize_of),
                    ef_construction: h.ef_construction.map_or(d.ef_construction, usize_of),
                    ef: h.ef.map_or(d.ef, usize_of),
                }
            }),
            quantization: quantization_from_pb(v.quantization)?,
        }),
    };
    let payload_index =
        c.payload_index.into_iter().map(|(k, t)| Ok((k.clone(), field_type_from_pb(&k, t)?))).collect::<Result<_>>()?;
    let chunking = c.chunking.map(|ch| {
        let d = ChunkConfig::default();
        ChunkConfig {
            max_tokens: ch.max_tokens.map_or(d.max_tokens, usize_of),
            overlap_tokens: ch.overlap_tokens.map_or(d.overlap_tokens, usize_of),
        }
    });
    Ok(CreateBody {
        vectors,
        text_fields: c.text_fields,
        text_analyzer: c.text_analyzer.map(analyzer_from_pb).transpose()?,
        text_boosts: c.text_boosts.into_iter().collect::<BTreeMap<_, _>>(),
        embed: c.embed.map(|e| EmbedConfig { model: e.model, fields: e.fields }),
        chunking,
        payload_index,
    })
}

/// A stored configuration, every default filled in.
pub(super) fn config_to_pb(c: &CollectionConfig) -> pb::CollectionConfig {
    let v = &c.vectors;
    pb::CollectionConfig {
        vectors: Some(pb::VectorsConfig {
            dim: Some(v.dim as u32),
            metric: metric_to_pb(v.metric) as i32,
            hnsw: Some(pb::HnswConfig {
                m: Some(v.hnsw.m as u32),
                ef_construction: Some(v.hnsw.ef_construction as u32),
                ef: Some(v.hnsw.ef as u32),
            }),
            quantization: match v.quantization {
                Quantization::None => pb::Quantization::None,
                Quantization::Int8 => pb::Quantization::Int8,
            } as i32,
        }),
        payload_index: c.payload_index.iter().map(|(k, t)| (k.clone(), field_type_to_pb(*t) as i32)).collect(),
        embed: c.embed.as_ref().map(|e| pb::EmbedConfig { model: e.model.clone(), fields: e.fields.clone() }),
        chunking: c.chunking.map(|ch| pb::ChunkConfig {
            max_tokens: Some(ch.max_tokens as u32),
            overlap_tokens: Some(ch.overlap_tokens as u32),
        }),
        text_fields: c.text_fields.clone(),
        text_analyzer: Some(analyzer_to_pb(c.text_analyzer)),
        text_boosts: c.text_boosts.iter().map(|(k, b)| (k.clone(), *b)).collect(),
    }
}

pub(super) fn status_to_pb(s: HealthStatus) -> pb::CollectionStatus {
    match s {
        HealthStatus::Ok => pb::CollectionStatus::Ok,
        HealthStatus::Degraded => pb::CollectionStatus::Degraded,
        HealthStatus::ReadOnly => pb::CollectionStatus::ReadOnly,
    }
}

// --------------------------------------------------------------------- points

pub(super) fn point_from_pb(p: pb::Point) -> Result<Point> {
    Ok(Point::new(id_from_pb(p.id)?, p.vector, payload_from_pb(p.payload)?).with_text(text_from_pb(p.text)))
}

pub(super) fn document_from_pb(d: pb::Document) -> Result<Document> {
    Ok(Document { id: d.id, text: d.text, title: d.title, payload: payload_from_pb(d.payload)? })
}

pub(super) fn delete_body(ids: Vec<pb::PointId>, filter: Option<pb::Filter>, all: bool) -> Result<DeleteBody> {
    Ok(DeleteBody {
        ids: (!ids.is_empty()).then(|| ids.into_iter().map(|i| id_from_pb(Some(i))).collect()).transpose()?,
        filter: filter.map(filter_from_pb).transpose()?,
        all: all.then_some(true),
    })
}

// -------------------------------------------------------------------- filters

fn filter_from_pb(f: pb::Filter) -> Result<Filter> {
    let conditions = |cs: Vec<pb::Condition>| cs.into_iter().map(condition_from_pb).collect::<Result<Vec<_>>>();
    Ok(Filter { must: conditions(f.must)?, should: conditions(f.should)?, must_not: conditions(f.must_not)? })
}

fn condition_from_pb(c: pb::Condition) -> Result<Condition> {
    match c.condition {
        Some(pb::condition::Condition::Nested(f)) => Ok(Condition::Nested(Box::new(filter_from_pb(f)?))),
        Some(pb::condition::Condition::Field(f)) => {
            let what = format!("filter condition on {:?}", f.key);
            let test = match f.test {
                Some(pb::field_condition::Test::Match(v)) => FieldTest::Match(value_from_pb(v, &what)?),
                Some(pb::field_condition::Test::In(l)) => match list_from_pb(l, &what)? {
                    Value::Array(items) => FieldTest::In(items),
                    _ => unreachable!("a list converts to an array"),
                },
                Some(pb::field_condition::Test::Range(r)) => {
                    FieldTest::Range(NumRange { gt: r.gt, gte: r.gte, lt: r.lt, lte: r.lte })
                }
                Some(pb::field_condition::Test::Exists(b)) => FieldTest::Exists(b),
                None => return Err(ApiError::invalid(format!("{what}: set one of match, in, range or exists"))),
            };
            Ok(Condition::Field { key: f.key, test })
        }
        None => Err(ApiError::invalid("filter: a condition needs a field test or a nested filter")),
    }
}

// ---------------------------------------------------------------------- query

fn mode_from_pb(v: i32) -> Result<Option<Mode>> {
    Ok(match enum_value(v, "mode")? {
        pb::SearchMode::Unspecified => None,
        pb::SearchMode::Vector => Some(Mode::Vector),
        pb::SearchMode::Text => Some(Mode::Text),
        pb::SearchMode::Hybrid => Some(Mode::Hybrid),
    })
}

fn syntax_from_pb(v: i32) -> Result<Option<Syntax>> {
    Ok(match enum_value(v, "syntax")? {
        pb::Syntax::Unspecified => None,
        pb::Syntax::Query => Some(Syntax::Query),
        pb::Syntax::Plain => Some(Syntax::Plain),
    })
}

fn fusion_from_pb(f: pb::Fusion) -> Option<Fusion> {
    Some(match f.method? {
        pb::fusion::Method::Rrf(r) => Fusion::Rrf { k: r.k.unwrap_or(DEFAULT_RRF_K) },
        pb::fusion::Method::Weighted(w) => {
            Fusion::Weighted { vector_weight: w.vector_weight.unwrap_or(DEFAULT_VECTOR_WEIGHT) }
        }
    })
}

/// A query message as the shared query body.
pub(super) fn query_body(r: pb::QueryRequest) -> Result<QueryBody> {
    let mut q = QueryBody::new(r.text, (!r.vector.is_empty()).then_some(r.vector));
    if let Some(limit) = r.limit {
        q.limit = limit as usize;
    }
    q.mode = mode_from_pb(r.mode)?;
    q.syntax = syntax_from_pb(r.syntax)?;
    q.filter = r.filter.map(filter_from_pb).transpose()?;
    q.fusion = r.fusion.and_then(fusion_from_pb);
    q.offset = r.offset as usize;
    q.ef = r.ef.map(usize_of);
    q.exact = r.exact;
    q.with_payload = !r.without_payload;
    q.with_vector = r.with_vector;
    q.with_text = r.with_text;
    q.highlight = r.highlight;
    Ok(q)
}

pub(super) fn scored_to_pb(h: ScoredPoint) -> pb::ScoredPoint {
    pb::ScoredPoint {
        id: Some(id_to_pb(h.id)),
        score: h.score,
        payload: h.payload.and_then(payload_to_pb),
        vector: h.vector.unwrap_or_default(),
        text: h.text.map(text_to_pb).unwrap_or_default(),
        highlights: h.highlights.unwrap_or_default().into_iter().collect(),
    }
}

// ------------------------------------------------------------------------ RAG

fn generator_from_pb(g: pb::Generator) -> Option<GeneratorConfig> {
    match g.kind? {
        pb::generator::Kind::Extractive(e) => {
            Some(GeneratorConfig::Extractive { max_sentences: e.max_sentences.map_or(DEFAULT_MAX_SENTENCES, usize_of) })
        }
        pb::generator::Kind::Openai(o) => {
            let mut c = OpenAiConfig::new(o.base_url, o.model);
            c.api_key_env = o.api_key_env;
            if let Some(t) = o.timeout_ms {
                c.timeout_ms = t;
            }
            if let Some(r) = o.max_retries {
                c.max_retries = r;
            }
            if let Some(t) = o.temperature {
                c.temperature = t;
            }
            c.max_tokens = o.max_tokens;
            Some(GeneratorConfig::Openai(c))
        }
    }
}

/// A RAG message as the shared RAG body (always streamed).
pub(super) fn rag_body(r: pb::RagRequest) -> Result<RagBody> {
    let mut b = RagBody::new(r.question);
    if let Some(limit) = r.limit {
        b.limit = limit as usize;
    }
    if let Some(budget) = r.max_context_tokens {
        b.max_context_tokens = budget as usize;
    }
    b.filter = r.filter.map(filter_from_pb).transpose()?;
    b.generator = r.generator.and_then(generator_from_pb);
    Ok(b)
}

pub(super) fn citation_to_pb(c: Citation) -> pb::Citation {
    pb::Citation {
        id: Some(id_to_pb(c.id)),
        doc_id: c.doc_id,
        field: c.field,
        start: c.start as u64,
        end: c.end as u64,
        text: c.text,
        score: c.score,
    }
}
