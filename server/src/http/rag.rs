//! `POST /v1/collections/{name}/rag`: a grounded answer with citations, whole or
//! as server-sent events (`token`…, `citations`, `done`; `error` if it fails
//! after the stream began). A client that disconnects stops the work: the
//! engine's sink sees the closed channel and the generator gives up.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use naksha_query::{Error as QueryError, RagAnswer, RagEvent};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::{blocking, json_response, parse_json, AppState, ErrorBody, ErrorDetail};
use crate::error::ApiError;
use crate::ops;

fn default_limit() -> usize {
    8
}
fn default_budget() -> usize {
    1500
}

/// A question.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RagBody {
    /// The question, in plain words.
    question: String,
    /// Most context passages (default 8, at most 50).
    #[serde(default = "default_limit")]
    limit: usize,
    /// Token budget for the passages, counted with the collection model's tokenizer (default 1500).
    #[serde(default = "default_budget")]
    max_context_tokens: usize,
    /// Payload filter, as for queries.
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    /// `{"kind": "extractive", "max_sentences": 3}` (default) or `{"kind": "openai", "base_url",
    /// "model", "api_key_env", "timeout_ms", "max_retries", "temperature", "max_tokens"}`.
    #[schema(value_type = Option<Object>)]
    generator: Option<Value>,
    /// Reply with `text/event-stream`: `token` events, then `citations`, then `done`.
    #[serde(default)]
    stream: bool,
}

/// The answer: `{"answer", "citations": [{"id", "doc_id", "field", "start", "end", "text", "score"}],
/// "contexts", "context_tokens", "took_ms"}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(value_type = Object)]
pub struct RagOut(RagAnswer);

/// Retrieve, pack, generate and cite.
#[utoipa::path(post, path = "/v1/collections/{name}/rag", tag = "query", params(("name" = String, Path)),
    request_body = RagBody,
    responses((status = 200, body = RagOut, description = "JSON, or text/event-stream with \"stream\": true"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn rag(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let b: RagBody = parse_json(body, state.body_limit)?;
    let req = ops::rag_request(
        b.question,
        b.limit,
        b.max_context_tokens,
        b.filter.unwrap_or(Value::Null),
        b.generator.unwrap_or(Value::Null),
        &state.generator_hosts,
    )?;
    let collection = state.db()?.collection(&name)?;
    if !b.stream {
        return blocking(move || Ok(json_response(StatusCode::OK, &RagOut(collection.rag(&req)?)))).await;
    }
    // Refused with a status, as the whole answer would be, not as an event.
    collection.check_rag(&req)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::task::spawn_blocking(move || {
        let send = |e: Event| tx.blocking_send(e).is_ok();
        let result = collection.rag_stream(&req, &mut |e| send(event(e)));
        match result {
            Ok(a) => {
                send(data(
                    "done",
                    json!({"contexts": a.contexts, "context_tokens": a.context_tokens, "took_ms": a.took_ms}),
                ));
            }
            Err(QueryError::Cancelled) => tracing::debug!("rag stream: client went away"),
            Err(e) => {
                let e = ApiError::from(e);
                let body = ErrorBody { error: ErrorDetail { code: e.kind.code().to_owned(), message: e.message } };
                send(data("error", serde_json::to_value(body).unwrap_or_default()));
            }
        }
    });
    let stream = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

fn data(name: &str, v: Value) -> Event {
    Event::default().event(name).data(v.to_string())
}

fn event(e: RagEvent) -> Event {
    match e {
        RagEvent::Token(t) => data("token", json!({"text": t})),
        RagEvent::Citations(c) => data("citations", json!({"citations": c})),
    }
}
