//! OpenAPI schemas of the engine's types (filters, configs, fusion,
//! generators, ids, payloads, results), which live in crates that know nothing
//! of OpenAPI. Each is a marker type: request and response structs name it with
//! `#[schema(value_type = schema::Filter)]`, utoipa emits a `$ref` to
//! `#/components/schemas/Filter`, and [`document`] fills the component with the
//! JSON Schema below. The schemas describe exactly what the engine's serde
//! forms accept and produce; the contract tests (openapi-spec-validator and
//! schemathesis with response conformance) hold them to it.

use std::borrow::Cow;

use serde_json::{json, Value};
use utoipa::openapi::{RefOr, Schema};

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

macro_rules! engine_schemas {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("OpenAPI schema `", stringify!($name), "` (see [`engine_schema`]).")]
            #[derive(Debug)]
            pub struct $name;
            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    RefOr::T(Schema::default())
                }
            }
            impl utoipa::ToSchema for $name {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($name))
                }
            }
        )*
        /// Names of every engine schema.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

engine_schemas!(
    Metric,
    Quantization,
    HnswConfig,
    VectorsConfig,
    Analyzer,
    EmbedConfig,
    ChunkConfig,
    FieldType,
    CollectionConfig,
    HealthStatus,
    PointId,
    Payload,
    TextFields,
    ScalarValue,
    Filter,
    Condition,
    NumRange,
    Mode,
    Syntax,
    Fusion,
    Generator,
    OpenAiGenerator,
    ScoredPoint,
    Citation,
    RagAnswer,
    RagStreamEvent,
    Document,
);

const LANGUAGES: [&str; 13] = [
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "russian",
    "spanish",
    "swedish",
];

fn array_of(name: &str) -> Value {
    json!({"type": "array", "items": r(name)})
}

/// The JSON Schema of engine type `name` (one of [`NAMES`]).
pub fn engine_schema(name: &str) -> Value {
    let u32max = u64::from(u32::MAX);
    match name {
        "Metric" => json!({"type": "string", "enum": ["cosine", "dot", "l2"],
            "description": "Similarity metric: cosine (vectors normalised on the way in), dot (inner product), l2 (Euclidean distance)."}),
        "Quantization" => json!({"type": "string", "enum": ["none", "int8"],
            "description": "none: f32 everywhere; int8: int8 scalar quantization for the graph walk, f32 rescoring."}),
        "HnswConfig" => json!({"type": "object", "additionalProperties": false,
            "description": "Graph parameters; omitted fields take the defaults.",
            "properties": {
                "m": {"type": "integer", "minimum": 2, "maximum": 128, "default": 16, "description": "Links per node (level 0 keeps 2m)."},
                "ef_construction": {"type": "integer", "minimum": 1, "maximum": 4096, "default": 200, "description": "Beam width while building."},
                "ef": {"type": "integer", "minimum": 1, "maximum": 4096, "default": 128, "description": "Default beam width while searching."}}}),
        "VectorsConfig" => {
            json!({"type": "object", "additionalProperties": false, "required": ["dim", "metric", "hnsw", "quantization"],
            "description": "A collection's vector space, as stored.",
            "properties": {"dim": {"type": "integer", "minimum": 1, "maximum": 65536}, "metric": r("Metric"),
                "hnsw": r("HnswConfig"), "quantization": r("Quantization")}})
        }
        "Analyzer" => json!({"type": "object", "additionalProperties": false,
            "description": "How text fields are cut into terms.",
            "properties": {
                "kind": {"type": "string", "enum": ["language", "simple", "whitespace"], "default": "language",
                    "description": "language: words, lowercased, stop words and stemmer; simple: words, lowercased; whitespace: whitespace-separated tokens, lowercased."},
                "language": {"type": "string", "enum": LANGUAGES, "default": "english"},
                "stop_words": {"type": "boolean", "default": true},
                "stemming": {"type": "boolean", "default": true}}}),
        "EmbedConfig" => json!({"type": "object", "additionalProperties": false, "required": ["model", "fields"],
            "description": "The collection's embedding model: fills vectors from these text fields (joined by a newline) and embeds text queries.",
            "properties": {"model": {"type": "string", "description": "A model name from GET /v1/models."},
                "fields": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
            "example": {"model": "all-minilm-l6-v2", "fields": ["title", "body"]}}),
        "ChunkConfig" => json!({"type": "object", "additionalProperties": false,
            "description": "How the documents endpoint cuts texts into chunks; overlap_tokens must be under half of max_tokens.",
            "properties": {"max_tokens": {"type": "integer", "minimum": 8, "default": 256},
                "overlap_tokens": {"type": "integer", "minimum": 0, "default": 32}}}),
        "FieldType" => json!({"type": "string", "enum": ["keyword", "integer", "float", "bool"],
            "description": "Type of a payload index."}),
        "CollectionConfig" => {
            json!({"type": "object", "additionalProperties": false, "required": ["vectors", "payload_index"],
            "description": "A collection's stored configuration, defaults filled in.",
            "properties": {
                "vectors": r("VectorsConfig"),
                "payload_index": {"type": "object", "additionalProperties": r("FieldType")},
                "embed": r("EmbedConfig"),
                "chunking": r("ChunkConfig"),
                "text_fields": {"type": "array", "items": {"type": "string"}},
                "text_analyzer": r("Analyzer"),
                "text_boosts": {"type": "object", "additionalProperties": {"type": "number"}}}})
        }
        "HealthStatus" => json!({"type": "string", "enum": ["ok", "degraded", "read_only"],
            "description": "ok; degraded (background flushes or merges failing, retried with back-off); read_only (a WAL fsync failed: restart to recover)."}),
        "PointId" => json!({"description": "An unsigned 64-bit integer or a string of 1 to 512 bytes.",
            "oneOf": [{"type": "integer", "minimum": 0, "maximum": u64::MAX},
                      {"type": "string", "minLength": 1, "maxLength": 512}],
            "example": 42}),
        "Payload" => json!({"type": "object", "additionalProperties": true,
            "description": "Free-form JSON object (at most 1 MiB, nested at most 32 levels).",
            "example": {"lang": "en", "year": 2024, "tags": ["io", "fs"]}}),
        "TextFields" => json!({"type": "object", "additionalProperties": {"type": "string"},
            "description": "Text fields by name (indexed for BM25 when listed in text_fields; embedded when listed in embed.fields).",
            "example": {"title": "Reading files", "body": "Use std::fs::read_to_string."}}),
        "ScalarValue" => json!({"description": "A string, number or boolean.",
            "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}),
        "Filter" => json!({"type": "object", "additionalProperties": false,
            "description": "Every `must` condition holds, at least one `should` holds (when any is given), no `must_not` holds. At most 16 levels and 1,024 conditions.",
            "properties": {"must": array_of("Condition"), "should": array_of("Condition"), "must_not": array_of("Condition")},
            "example": {"must": [{"key": "lang", "match": "en"}, {"key": "year", "range": {"gte": 2020}}],
                        "must_not": [{"key": "draft", "match": true}]}}),
        "Condition" => {
            let key = json!({"type": "string", "minLength": 1, "maxLength": 256,
                "description": "Dotted path into the payload; on arrays, any element."});
            let field = |op: &str, arg: Value, what: &str| {
                json!({"type": "object", "additionalProperties": false, "required": ["key", op], "description": what,
                    "properties": {"key": key.clone(), op: arg}})
            };
            let mut nested = engine_schema("Filter");
            nested["minProperties"] = json!(1);
            nested["description"] = json!("A nested filter (at least one condition).");
            nested.as_object_mut().map(|o| o.remove("example"));
            json!({"description": "A test on a payload key, or a nested filter.", "oneOf": [
                field("match", r("ScalarValue"), "Some value at key equals this one."),
                field("in", json!({"type": "array", "items": r("ScalarValue"), "maxItems": 1024}), "Some value at key equals one of these."),
                field("range", r("NumRange"), "Some number at key lies in the range."),
                field("exists", json!({"type": "boolean"}), "true: the key holds a non-null value; false: it does not."),
                nested]})
        }
        "NumRange" => json!({"type": "object", "additionalProperties": false, "minProperties": 1,
            "description": "Bounds (at least one).",
            "properties": {"gt": {"type": "number"}, "gte": {"type": "number"}, "lt": {"type": "number"}, "lte": {"type": "number"}}}),
        "Mode" => json!({"type": "string", "enum": ["vector", "text", "hybrid"],
            "description": "vector: nearest vectors; text: BM25 over text_fields; hybrid: both, fused."}),
        "Syntax" => json!({"type": "string", "enum": ["query", "plain"],
            "description": "query: words, \"phrases\", +required, -excluded, field:word, AND/OR (a syntax error is a 400); plain: words only, any text accepted."}),
        "Fusion" => json!({"description": "How hybrid search merges its two rankings.", "oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["method"],
             "description": "Reciprocal rank fusion: score = sum of 1 / (k + rank).",
             "properties": {"method": {"const": "rrf"}, "k": {"type": "number", "minimum": 0, "maximum": 1_000_000, "default": 60}}},
            {"type": "object", "additionalProperties": false, "required": ["method"],
             "description": "Per-side min-max normalised scores: w * vector + (1 - w) * text.",
             "properties": {"method": {"const": "weighted"}, "vector_weight": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5}}}],
            "example": {"method": "rrf", "k": 60}}),
        "Generator" => json!({"description": "Who writes the answer.", "oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["kind"],
             "description": "No LLM: the sentences of the contexts that best answer the question, each cited.",
             "properties": {"kind": {"const": "extractive"}, "max_sentences": {"type": "integer", "minimum": 1, "maximum": 20, "default": 3}}},
            r("OpenAiGenerator")],
            "example": {"kind": "extractive", "max_sentences": 3}}),
        "OpenAiGenerator" => {
            json!({"type": "object", "additionalProperties": false, "required": ["kind", "base_url", "model"],
            "description": "Any OpenAI-compatible chat-completions endpoint; its host must be in the server's server.generator_hosts.",
            "properties": {"kind": {"const": "openai"},
                "base_url": {"type": "string", "description": "e.g. http://127.0.0.1:8000/v1 (/chat/completions is appended)."},
                "model": {"type": "string"},
                "api_key_env": {"type": ["string", "null"], "description": "Environment variable of the server process holding the endpoint's key."},
                "timeout_ms": {"type": "integer", "minimum": 1, "default": 60000},
                "max_retries": {"type": "integer", "minimum": 0, "maximum": u32max, "default": 2},
                "temperature": {"type": "number", "default": 0},
                "max_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": u32max}}})
        }
        "ScoredPoint" => json!({"type": "object", "additionalProperties": false, "required": ["id", "score"],
            "properties": {"id": r("PointId"),
                "score": {"type": "number", "description": "Vector mode: similarity for cosine/dot, distance for l2; text mode: BM25; hybrid: the fused score."},
                "payload": {"description": "The payload (null when the point has none), when requested.",
                    "oneOf": [r("Payload"), {"type": "null"}]},
                "vector": {"type": "array", "items": {"type": "number"}},
                "text": {"description": "The text fields (null when the point has none), when requested.",
                    "oneOf": [r("TextFields"), {"type": "null"}]},
                "highlights": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "Per text field, a fragment with the matched terms in <b>…</b>."}}}),
        "Citation" => json!({"type": "object", "additionalProperties": false,
            "required": ["id", "doc_id", "field", "start", "end", "text", "score"],
            "description": "A quoted span: text is exactly characters start..end of the document's field.",
            "properties": {"id": r("PointId"), "doc_id": {"type": "string"}, "field": {"type": "string"},
                "start": {"type": "integer", "minimum": 0}, "end": {"type": "integer", "minimum": 0},
                "text": {"type": "string"}, "score": {"type": "number"}}}),
        "RagAnswer" => json!({"type": "object", "additionalProperties": false,
            "required": ["answer", "citations", "contexts", "context_tokens", "took_ms"],
            "description": "A grounded answer. With \"stream\": true the reply is text/event-stream instead: `token` events ({\"text\"}), then `citations` ({\"citations\": [Citation]}), then `done` ({\"contexts\", \"context_tokens\", \"took_ms\"}); `error` ({\"error\": {\"code\", \"message\"}}) if it fails after the stream began.",
            "properties": {"answer": {"type": "string", "description": "[n] marks refer to citations[n-1]; empty when nothing relevant was found."},
                "citations": array_of("Citation"), "contexts": {"type": "integer", "minimum": 0},
                "context_tokens": {"type": "integer", "minimum": 0}, "took_ms": {"type": "number"}}}),
        "RagStreamEvent" => json!({"type": "object", "required": ["event", "data"],
            "description": "One server-sent event of a streamed RAG answer; `data` is JSON: `token` {\"text\"}, `citations` {\"citations\": [Citation]}, `done` {\"contexts\", \"context_tokens\", \"took_ms\"}, `error` {\"error\": {\"code\", \"message\"}} (only if it fails after the stream began).",
            "properties": {"event": {"type": "string", "enum": ["token", "citations", "done", "error"]},
                "data": {"type": "string", "contentMediaType": "application/json"},
                "id": {"type": "string"}, "retry": {"type": "integer"}}}),
        "Document" => json!({"type": "object", "additionalProperties": false, "required": ["id", "text"],
            "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 488, "description": "At most 488 bytes; its chunks get ids {id}#{n}."},
                "text": {"type": "string"},
                "title": {"type": ["string", "null"], "description": "Embedded with every chunk and stored as text field title."},
                "payload": r("Payload")},
            "example": {"id": "fs-guide", "title": "Files", "text": "Open a file with File::open. Read it with read_to_string.", "payload": {"lang": "en"}}}),
        other => unreachable!("no engine schema {other}"),
    }
}

/// The OpenAPI document: utoipa's, with the engine schemas filled in, the
/// error codes listed, and every operation documenting its other errors as
/// `default` (any route can answer 401, 413, 415, 503, ... with an [`ErrorBody`](crate::error::ErrorBody)).
pub fn document(generated: utoipa::openapi::OpenApi, error_codes: &[&str]) -> Value {
    let mut doc = serde_json::to_value(generated).unwrap_or(Value::Null);
    let schemas = &mut doc["components"]["schemas"];
    if !schemas.is_object() {
        *schemas = json!({});
    }
    for name in NAMES {
        schemas[*name] = engine_schema(name);
    }
    if schemas["ErrorDetail"]["properties"]["code"].is_object() {
        schemas["ErrorDetail"]["properties"]["code"]["enum"] = json!(error_codes);
    }
    let default = json!({"description": "An error (`{\"error\": {\"code\", \"message\"}}`); the code names the kind.",
        "content": {"application/json": {"schema": r("ErrorBody")}}});
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            for op in item.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
                if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                    responses.entry("default").or_insert_with(|| default.clone());
                }
            }
        }
    }
    doc
}
