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
use naksha_rag::{Error as RagError, Rag, RagAnswer, RagEvent};
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::{blocking, json_response, parse_json, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::ops::RagBody;
use crate::schema;

/// The answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(value_type = schema::RagAnswer)]
pub struct RagOut(RagAnswer);

/// Retrieve, pack, generate and cite.
#[utoipa::path(post, path = "/v1/collections/{name}/rag", tag = "query", operation_id = "rag", params(("name" = String, Path)),
    request_body = RagBody,
    responses((status = 200, description = "The answer as JSON; with \"stream\": true, server-sent events (see RagAnswer)",
               content((RagOut = "application/json"), (schema::RagStreamEvent = "text/event-stream"))),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn rag(
    State(state): State<Arc<AppState>>,
    axum::Extension(ctx): axum::Extension<Arc<crate::tenancy::Ctx>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let b: RagBody = parse_json(body, state.body_limit)?;
    let stream = b.stream;
    let req = b.into_request(&state.generator_hosts)?;
    let collection = ctx.collection(&name)?;
    let (c, question) = (collection.clone(), req.question.clone());
    blocking(move || crate::ops::charge_query_text(&ctx, &c, Some(&question), true)).await?;
    if !stream {
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
            Err(RagError::Cancelled) => tracing::debug!("rag stream: client went away"),
            Err(e) => {
                let body = ErrorBody::from(ApiError::from(e));
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
