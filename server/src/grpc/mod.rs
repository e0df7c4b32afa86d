//! The gRPC API `naksha.v1` (tonic), the standard gRPC health service and
//! server reflection. Same operations and rules as HTTP: messages become the
//! shared request model of [`crate::ops`] in [`convert`], engine errors map
//! through [`crate::error::Kind::grpc`] with the API's code in the status details.

mod convert;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use naksha_rag::{Rag, RagEvent};
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::ops;
use crate::state::{blocking, AppState};

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
        config: Some(convert::config_to_pb(c.config())),
        points: i.points as u64,
        segments: i.segments as u64,
        disk_bytes: i.disk_bytes,
        memory_bytes: i.memory_bytes,
        created,
        status: convert::status_to_pb(i.status) as i32,
        error: i.error.unwrap_or_default(),
        memtable_points: i.memtable_points as u64,
        wal_bytes: i.wal_bytes,
        seq: i.seq,
    }
}

#[tonic::async_trait]
impl Naksha for NakshaService {
    async fn create_collection(
        &self,
        req: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        let r = req.into_inner();
        let body = convert::create_body(r.config)?;
        self.run(move |db| {
            let config = ops::collection_config(body, db.models())?;
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
        let points = r.points.into_iter().map(convert::point_from_pb).collect::<Result<Vec<_>, ApiError>>()?;
        self.run(move |db| {
            let n = points.len() as u64;
            let seq = db.collection(&r.collection)?.upsert(points)?;
            Ok(pb::UpsertResponse { upserted: n, seq })
        })
        .await
    }

    async fn get_point(&self, req: Request<pb::GetPointRequest>) -> Result<Response<pb::Point>, Status> {
        let r = req.into_inner();
        let id = convert::id_from_pb(r.id)?;
        self.run(move |db| match db.collection(&r.collection)?.get(&id)? {
            Some(p) => Ok(pb::Point {
                id: Some(convert::id_to_pb(p.id)),
                vector: p.vector,
                payload: convert::payload_to_pb(p.payload),
                text: convert::text_to_pb(p.text),
            }),
            None => Err(ApiError::not_found(format!("point {id} not found in collection {:?}", r.collection))),
        })
        .await
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = req.into_inner();
        let body = convert::delete_body(r.ids, r.filter, r.all)?;
        self.run(move |db| {
            let deleted = body.apply(&*db.collection(&r.collection)?)?;
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
        let docs = r.documents.into_iter().map(convert::document_from_pb).collect::<Result<Vec<_>, ApiError>>()?;
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
        let mut r = req.into_inner();
        let collection = std::mem::take(&mut r.collection);
        let search = convert::query_body(r)?.into_request()?;
        self.run(move |db| {
            let hits = db.collection(&collection)?.search(&search)?;
            let results = hits.into_iter().map(convert::scored_to_pb).collect();
            Ok(pb::QueryResponse { results, took_ms: started.elapsed().as_secs_f64() * 1e3 })
        })
        .await
    }

    type RagStream = tokio_stream::wrappers::ReceiverStream<Result<pb::RagEvent, Status>>;

    async fn rag(&self, req: Request<pb::RagRequest>) -> Result<Response<Self::RagStream>, Status> {
        let mut r = req.into_inner();
        let name = std::mem::take(&mut r.collection);
        let rag = convert::rag_body(r)?.into_request(&self.state.generator_hosts)?;
        let collection = self.state.db()?.collection(&name).map_err(ApiError::from)?;
        collection.check_rag(&rag).map_err(ApiError::from)?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::task::spawn_blocking(move || {
            let send = |e: pb::rag_event::Event| tx.blocking_send(Ok(pb::RagEvent { event: Some(e) })).is_ok();
            let result = collection.rag_stream(&rag, &mut |e| {
                send(match e {
                    RagEvent::Token(t) => pb::rag_event::Event::Token(t),
                    RagEvent::Citations(c) => pb::rag_event::Event::Citations(pb::RagCitations {
                        citations: c.into_iter().map(convert::citation_to_pb).collect(),
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
                Err(naksha_rag::Error::Cancelled) => tracing::debug!("rag stream: client went away"),
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
    // Both reflection versions: grpcurl and most tools speak v1, Python's
    // grpcio-reflection client still v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let key = state.api_key.clone();
    let limit = state.body_limit;
    let service = NakshaServer::new(NakshaService { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(GRPC_MAX_REPLY_BYTES);
    let auth = move |req: Request<()>| -> Result<Request<()>, Status> {
        let given = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        crate::auth::check(&key, given)?;
        Ok(req)
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
        .add_service(tonic::service::interceptor::InterceptedService::new(reflection_v1, auth.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(reflection_v1alpha, auth.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(service, auth))
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), shutdown)
        .await?;
    Ok(())
}
