//! The gRPC API `naksha.v1` (tonic), the standard gRPC health service and
//! server reflection. Same operations and rules as HTTP: the shared checks are
//! in [`crate::ops`], engine errors map through [`crate::error::Kind::grpc`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use naksha_query::{Document, Filter, Point, PointId};
use serde_json::Value;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::http::{blocking, AppState};
use crate::ops;

/// Generated messages, service and client.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("naksha.v1");
}

/// The encoded file descriptor set, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/naksha_v1_descriptor.bin"));

use pb::naksha_server::{Naksha, NakshaServer};

/// The service implementation over the shared state.
#[derive(Debug, Clone)]
pub struct NakshaService {
    state: Arc<AppState>,
}

fn id_from_pb(id: Option<pb::PointId>) -> Result<PointId, ApiError> {
    match id.and_then(|i| i.kind) {
        Some(pb::point_id::Kind::Num(n)) => Ok(PointId::Num(n)),
        Some(pb::point_id::Kind::Str(s)) => Ok(PointId::Str(s)),
        None => Err(ApiError::invalid("point id is required")),
    }
}

fn id_to_pb(id: PointId) -> pb::PointId {
    let kind = match id {
        PointId::Num(n) => pb::point_id::Kind::Num(n),
        PointId::Str(s) => pb::point_id::Kind::Str(s),
    };
    pb::PointId { kind: Some(kind) }
}

fn json_or_null(text: &str, what: &str) -> Result<Value, ApiError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    crate::bounded::parse(text).map_err(|e| ApiError::invalid(format!("{what}: malformed JSON: {e}")))
}

fn payload_text(v: &Value) -> String {
    if v.is_null() {
        String::new()
    } else {
        v.to_string()
    }
}

impl NakshaService {
    async fn run<T, F>(&self, f: F) -> Result<Response<T>, Status>
    where
        F: FnOnce(Arc<naksha_query::Database>) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.state.db()?;
        Ok(Response::new(blocking(move || f(db)).await?))
    }
}

fn info(c: &naksha_query::Collection, name: String, created: bool) -> pb::CollectionInfo {
    let i = c.info();
    pb::CollectionInfo {
        name,
        config_json: ops::config_json(c.config()).to_string(),
        points: i.points as u64,
        segments: i.segments as u64,
        disk_bytes: i.disk_bytes,
        memory_bytes: i.memory_bytes,
        created,
        status: i.status.as_str().to_owned(),
        error: i.error.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl Naksha for NakshaService {
    async fn create_collection(
        &self,
        req: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        let r = req.into_inner();
        self.run(move |db| {
            let config = ops::collection_config(r.config_json.as_bytes(), db.models())?;
            let (c, created) = ops::create_collection(&db, &r.name, config)?;
            Ok(info(&c, r.name, created))
        })
        .await
    }

    async fn list_collections(
        &self,
        _: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        self.run(|db| {
            let collections = db
                .list()
                .into_iter()
                .map(|(name, points)| pb::CollectionSummary { name, points: points as u64 })
                .collect();
            Ok(pb::ListCollectionsResponse { collections })
        })
        .await
    }

    async fn get_collection(
        &self,
        req: Request<pb::GetCollectionRequest>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        let name = req.into_inner().name;
        self.run(move |db| Ok(info(&*db.collection(&name)?, name, false))).await
    }

    async fn delete_collection(
        &self,
        req: Request<pb::DeleteCollectionRequest>,
    ) -> Result<Response<pb::DeleteCollectionResponse>, Status> {
        let name = req.into_inner().name;
        self.run(move |db| match db.delete_collection(&name)? {
            true => Ok(pb::DeleteCollectionResponse { deleted: true }),
            false => Err(ApiError::not_found(format!("collection {name:?} not found"))),
        })
        .await
    }

    async fn upsert(&self, req: Request<pb::UpsertRequest>) -> Result<Response<pb::UpsertResponse>, Status> {
        let r = req.into_inner();
        let points = r
            .points
            .into_iter()
            .map(|p| {
                let point = Point::new(id_from_pb(p.id)?, p.vector, json_or_null(&p.payload_json, "payload_json")?);
                Ok(point.with_text(json_or_null(&p.text_json, "text_json")?))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        self.run(move |db| {
            let n = points.len() as u64;
            let seq = db.collection(&r.collection)?.upsert(points)?;
            Ok(pb::UpsertResponse { upserted: n, seq })
        })
        .await
    }

    async fn get_point(&self, req: Request<pb::GetPointRequest>) -> Result<Response<pb::Point>, Status> {
        let r = req.into_inner();
        let id = id_from_pb(r.id)?;
        self.run(move |db| match db.collection(&r.collection)?.get(&id)? {
            Some(p) => Ok(pb::Point {
                id: Some(id_to_pb(p.id)),
                vector: p.vector,
                payload_json: payload_text(&p.payload),
                text_json: payload_text(&p.text),
            }),
            None => Err(ApiError::not_found(format!("point {id} not found in collection {:?}", r.collection))),
        })
        .await
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = req.into_inner();
        let filter = json_or_null(&r.filter_json, "filter_json")?;
        let ids = r.ids.into_iter().map(|i| id_from_pb(Some(i))).collect::<Result<Vec<_>, _>>()?;
        self.run(move |db| {
            let c = db.collection(&r.collection)?;
            let deleted = match (ids.is_empty(), filter.is_null(), r.all) {
                (false, true, false) => c.delete(ids)?,
                (true, false, false) => c.delete_where(&Filter::from_json(filter)?)?,
                (true, true, true) => c.delete_all()?,
                _ => return Err(ApiError::invalid("give exactly one of ids, filter_json or all")),
            };
            Ok(pb::DeleteResponse { deleted: deleted as u64 })
        })
        .await
    }

    async fn list_models(
        &self,
        _req: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        self.run(|db| {
            let models = db
                .models()
                .list()
                .into_iter()
                .map(|m| pb::ModelInfo {
                    name: m.name,
                    dim: m.dim as u32,
                    max_tokens: m.max_tokens as u32,
                    device: m.device,
                })
                .collect();
            Ok(pb::ListModelsResponse { models })
        })
        .await
    }

    async fn embed(&self, req: Request<pb::EmbedRequest>) -> Result<Response<pb::EmbedResponse>, Status> {
        let r = req.into_inner();
        self.run(move |db| {
            let (dim, data) = ops::embed(db.models(), &r.model, &r.input)?;
            let data = data.into_iter().map(|values| pb::Vector { values }).collect();
            Ok(pb::EmbedResponse { model: r.model, dim: dim as u32, data })
        })
        .await
    }

    async fn upsert_documents(
        &self,
        req: Request<pb::UpsertDocumentsRequest>,
    ) -> Result<Response<pb::UpsertDocumentsResponse>, Status> {
        let r = req.into_inner();
        let docs = r
            .documents
            .into_iter()
            .map(|d| {
                let payload = json_or_null(&d.payload_json, "payload_json")?;
                let title = Some(d.title).filter(|t| !t.is_empty());
                Ok(Document { id: d.id, text: d.text, title, payload })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        self.run(move |db| {
            let w = db.collection(&r.collection)?.upsert_documents(docs)?;
            Ok(pb::UpsertDocumentsResponse { documents: w.documents as u64, chunks: w.chunks as u64, seq: w.seq })
        })
        .await
    }

    async fn delete_documents(
        &self,
        req: Request<pb::DeleteDocumentsRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = req.into_inner();
        self.run(move |db| {
            let deleted = db.collection(&r.collection)?.delete_documents(&r.ids)?;
            Ok(pb::DeleteResponse { deleted: deleted as u64 })
        })
        .await
    }

    async fn query(&self, req: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        let started = Instant::now();
        let r = req.into_inner();
        let vector = (!r.vector.is_empty()).then_some(r.vector);
        let text = (!r.text.is_empty()).then(|| r.text.clone());
        let fusion = json_or_null(&r.fusion_json, "fusion_json")?;
        let mut search =
            ops::search_request(text, vector, Some(r.mode.as_str()), Some(fusion), Some(r.syntax.as_str()))?;
        search.filter = match json_or_null(&r.filter_json, "filter_json")? {
            Value::Null => None,
            f => Some(Filter::from_json(f).map_err(ApiError::from)?),
        };
        search.limit = if r.limit == 0 { 10 } else { r.limit as usize };
        search.offset = r.offset as usize;
        search.ef = r.ef.map(|e| e as usize);
        search.exact = r.exact;
        search.with_payload = !r.without_payload;
        search.with_vector = r.with_vector;
        search.with_text = r.with_text;
        search.highlight = r.highlight;
        self.run(move |db| {
            let hits = db.collection(&r.collection)?.search(&search)?;
            let results = hits
                .into_iter()
                .map(|h| pb::ScoredPoint {
                    id: Some(id_to_pb(h.id)),
                    score: h.score,
                    payload_json: h.payload.as_ref().map(payload_text).unwrap_or_default(),
                    vector: h.vector.unwrap_or_default(),
                    text_json: h.text.as_ref().map(payload_text).unwrap_or_default(),
                    highlights: h.highlights.unwrap_or_default().into_iter().collect(),
                })
                .collect();
            Ok(pb::QueryResponse { results, took_ms: started.elapsed().as_secs_f64() * 1e3 })
        })
        .await
    }

    type RagStream = tokio_stream::wrappers::ReceiverStream<Result<pb::RagEvent, Status>>;

    async fn rag(&self, req: Request<pb::RagRequest>) -> Result<Response<Self::RagStream>, Status> {
        let r = req.into_inner();
        let or = |n: u32, default: usize| if n == 0 { default } else { n as usize };
        let rag = ops::rag_request(
            r.question,
            or(r.limit, 8),
            or(r.max_context_tokens, 1500),
            json_or_null(&r.filter_json, "filter_json")?,
            json_or_null(&r.generator_json, "generator_json")?,
            &self.state.generator_hosts,
        )?;
        let collection = self.state.db()?.collection(&r.collection).map_err(ApiError::from)?;
        collection.check_rag(&rag).map_err(ApiError::from)?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::task::spawn_blocking(move || {
            let send = |e: pb::rag_event::Event| tx.blocking_send(Ok(pb::RagEvent { event: Some(e) })).is_ok();
            let result = collection.rag_stream(&rag, &mut |e| {
                send(match e {
                    naksha_query::RagEvent::Token(t) => pb::rag_event::Event::Token(t),
                    naksha_query::RagEvent::Citations(c) => pb::rag_event::Event::Citations(pb::RagCitations {
                        citations: c
                            .into_iter()
                            .map(|c| pb::Citation {
                                id: Some(id_to_pb(c.id)),
                                doc_id: c.doc_id,
                                field: c.field,
                                start: c.start as u64,
                                end: c.end as u64,
                                text: c.text,
                                score: c.score,
                            })
                            .collect(),
                    }),
                })
            });
            match result {
                Ok(a) => {
                    send(pb::rag_event::Event::Done(pb::RagDone {
                        contexts: a.contexts as u32,
                        context_tokens: a.context_tokens as u32,
                        took_ms: a.took_ms,
                    }));
                }
                Err(naksha_query::Error::Cancelled) => tracing::debug!("rag stream: client went away"),
                Err(e) => {
                    let _ = tx.blocking_send(Err(ApiError::from(e).into()));
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

/// The standard health service, reporting `naksha.v1.Naksha` as not serving
/// until [`mark_serving`] is called.
pub async fn health() -> (
    tonic_health::server::HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_not_serving::<NakshaServer<NakshaService>>().await;
    (reporter, service)
}

/// Report `naksha.v1.Naksha` as serving.
pub async fn mark_serving(reporter: &tonic_health::server::HealthReporter) {
    reporter.set_serving::<NakshaServer<NakshaService>>().await;
}

/// Serve gRPC on `listener` until `shutdown` resolves.
/// Concurrent requests (streams) on one gRPC connection.
const GRPC_STREAMS_PER_CONNECTION: usize = 256;
/// Largest gRPC reply.
const GRPC_MAX_REPLY_BYTES: usize = 256 << 20;

/// Serve gRPC until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    health: tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let key = state.api_key.clone();
    let limit = state.body_limit;
    let service = NakshaServer::new(NakshaService { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(GRPC_MAX_REPLY_BYTES);
    let auth = move |req: Request<()>| -> Result<Request<()>, Status> {
        if key.is_empty() {
            return Ok(req);
        }
        let given =
            req.metadata().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(g) if crate::http::constant_time_eq(g.as_bytes(), key.as_bytes()) => Ok(req),
            _ => Err(ApiError::unauthenticated().into()),
        }
    };
    // Limits against slow or hostile clients: streams per connection, HTTP/2
    // pings to find dead peers, TCP keep-alive. Reflection needs the key too
    // (it describes the whole API); health stays open, as /healthz does.
    tonic::transport::Server::builder()
        .concurrency_limit_per_connection(GRPC_STREAMS_PER_CONNECTION)
        .max_concurrent_streams(Some(GRPC_STREAMS_PER_CONNECTION as u32))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .add_service(health)
        .add_service(tonic::service::interceptor::InterceptedService::new(reflection, auth.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(service, auth))
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), shutdown)
        .await?;
    Ok(())
}
