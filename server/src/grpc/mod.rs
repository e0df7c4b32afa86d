//! The gRPC API `naksha.v1` (tonic), the standard gRPC health service and
//! server reflection. Same operations and rules as HTTP: messages become the
//! shared request model of [`crate::ops`] in [`convert`], engine errors map
//! through [`crate::error::Kind::grpc`] with the API's code in the status details.

mod convert;
mod tenants;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use naksha_rag::{Rag, RagEvent};
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::ops;
use crate::state::{blocking, AppState};
use crate::tenancy::{Access, Action, Ctx, TENANT_HEADER};

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

/// The operation name and action of each method (the HTTP table is
/// `http::access::rule`); a method missing here is refused for everyone.
pub fn rule(method: &str) -> Option<(&'static str, Action)> {
    use Action::*;
    Some(match method {
        "CreateCollection" => ("collections.create", Manage),
        "ListCollections" => ("collections.list", Read),
        "GetCollection" => ("collections.get", Read),
        "DeleteCollection" => ("collections.delete", Manage),
        "Upsert" => ("points.upsert", Write),
        "GetPoint" => ("points.get", Read),
        "Delete" => ("points.delete", Write),
        "Query" => ("query", Read),
        "Rag" => ("rag", Read),
        "ListModels" => ("models.list", Read),
        "Embed" => ("embed", Read),
        "UpsertDocuments" => ("documents.upsert", Write),
        "DeleteDocuments" => ("documents.delete", Write),
        "CreateTenant" => ("tenants.create", Admin),
        "ListTenants" => ("tenants.list", Admin),
        "GetTenant" => ("tenants.get", TenantInfo),
        "UpdateTenant" => ("tenants.update", Admin),
        "DeleteTenant" => ("tenants.delete", Admin),
        "CreateKey" => ("keys.create", Keys),
        "ListKeys" => ("keys.list", Keys),
        "RevokeKey" => ("keys.revoke", Keys),
        "ListAudit" => ("audit.list", Admin),
        _ => return None,
    })
}

/// What a call addresses.
#[derive(Debug, Default)]
struct Target<'a> {
    collection: Option<&'a str>,
    tenant: Option<&'a str>,
}

impl NakshaService {
    /// Authenticate and authorise a call (as HTTP does, with the key in the
    /// `authorization` metadata and the admin's tenant in `x-naksha-tenant`).
    async fn ctx<T>(&self, req: &Request<T>, method: &str, target: Target<'_>) -> Result<Arc<Ctx>, Status> {
        let Some((op, action)) = rule(method) else {
            return Err(ApiError::denied(format!("no access rule for {method}")).into());
        };
        let tenancy = self.state.tenancy()?;
        let meta = |k: &str| req.metadata().get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let resource = match (target.collection, target.tenant) {
            (Some(c), _) => format!("collections/{c}"),
            (None, Some(t)) => format!("tenants/{t}"),
            (None, None) => op.to_owned(),
        };
        let access = Access {
            op,
            action,
            collection: target.collection.map(str::to_owned),
            tenant_path: target.tenant.map(str::to_owned),
            tenant_header: meta(TENANT_HEADER),
            resource,
            client: req.remote_addr().map(|a| a.to_string()),
        };
        let who = tenancy.authenticate(meta("authorization").as_deref());
        Ok(Arc::new(blocking(move || tenancy.authorize(who, access)).await?))
    }

    /// Run `f` on the blocking pool and audit its outcome.
    async fn run<T, F>(&self, ctx: Arc<Ctx>, f: F) -> Result<Response<T>, Status>
    where
        F: FnOnce(&Ctx) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let out = blocking(move || {
            let r = f(&ctx);
            ctx.finish(r.as_ref().map(|_| ()).map_err(|e| e.kind));
            r
        })
        .await?;
        Ok(Response::new(out))
    }

    fn collection<'a>(name: &'a str) -> Target<'a> {
        Target { collection: Some(name), tenant: None }
    }

    fn tenant<'a>(name: &'a str) -> Target<'a> {
        Target { collection: None, tenant: Some(name) }
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
        let ctx = self.ctx(&req, "CreateCollection", Self::collection(&req.get_ref().name)).await?;
        let r = req.into_inner();
        let body = convert::create_body(r.config)?;
        self.run(ctx, move |ctx| {
            let config = ops::collection_config(body, ctx.db()?.models())?;
            let (c, created) = ctx.create_collection(&r.name, config)?;
            Ok(info(&c, r.name, created))
        })
        .await
    }

    async fn list_collections(
        &self,
        req: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        let ctx = self.ctx(&req, "ListCollections", Target::default()).await?;
        self.run(ctx, |ctx| {
            let collections = ctx
                .db()?
                .list()
                .into_iter()
                .filter(|(name, _)| ctx.visible(name))
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
        let ctx = self.ctx(&req, "GetCollection", Self::collection(&req.get_ref().name)).await?;
        let name = req.into_inner().name;
        self.run(ctx, move |ctx| Ok(info(&*ctx.collection(&name)?, name, false))).await
    }

    async fn delete_collection(
        &self,
        req: Request<pb::DeleteCollectionRequest>,
    ) -> Result<Response<pb::DeleteCollectionResponse>, Status> {
        let ctx = self.ctx(&req, "DeleteCollection", Self::collection(&req.get_ref().name)).await?;
        let name = req.into_inner().name;
        self.run(ctx, move |ctx| {
            match ctx.collection(&name).and_then(|_| Ok(ctx.db()?.delete_collection(&name)?))? {
                true => Ok(pb::DeleteCollectionResponse { deleted: true }),
                false => Err(ApiError::not_found(format!("collection {name:?} not found"))),
            }
        })
        .await
    }

    async fn upsert(&self, req: Request<pb::UpsertRequest>) -> Result<Response<pb::UpsertResponse>, Status> {
        let ctx = self.ctx(&req, "Upsert", Self::collection(&req.get_ref().collection)).await?;
        let r = req.into_inner();
        let points = r.points.into_iter().map(convert::point_from_pb).collect::<Result<Vec<_>, ApiError>>()?;
        self.run(ctx, move |ctx| {
            let (n, seq) = ops::upsert_points(ctx, &r.collection, points)?;
            Ok(pb::UpsertResponse { upserted: n as u64, seq })
        })
        .await
    }

    async fn get_point(&self, req: Request<pb::GetPointRequest>) -> Result<Response<pb::Point>, Status> {
        let ctx = self.ctx(&req, "GetPoint", Self::collection(&req.get_ref().collection)).await?;
        let r = req.into_inner();
        let id = convert::id_from_pb(r.id)?;
        self.run(ctx, move |ctx| match ctx.collection(&r.collection)?.get(&id)? {
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
        let ctx = self.ctx(&req, "Delete", Self::collection(&req.get_ref().collection)).await?;
        let r = req.into_inner();
        let body = convert::delete_body(r.ids, r.filter, r.all)?;
        self.run(ctx, move |ctx| {
            let deleted = body.apply(&*ctx.collection(&r.collection)?)?;
            Ok(pb::DeleteResponse { deleted: deleted as u64 })
        })
        .await
    }

    async fn list_models(
        &self,
        req: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let ctx = self.ctx(&req, "ListModels", Target::default()).await?;
        self.run(ctx, |ctx| {
            let models = ctx
                .db()?
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
        let ctx = self.ctx(&req, "Embed", Target::default()).await?;
        let r = req.into_inner();
        self.run(ctx, move |ctx| {
            let (dim, data) = ops::embed_for(ctx, &r.model, &r.input)?;
            let data = data.into_iter().map(|values| pb::Vector { values }).collect();
            Ok(pb::EmbedResponse { model: r.model, dim: dim as u32, data })
        })
        .await
    }

    async fn upsert_documents(
        &self,
        req: Request<pb::UpsertDocumentsRequest>,
    ) -> Result<Response<pb::UpsertDocumentsResponse>, Status> {
        let ctx = self.ctx(&req, "UpsertDocuments", Self::collection(&req.get_ref().collection)).await?;
        let r = req.into_inner();
        let docs = r.documents.into_iter().map(convert::document_from_pb).collect::<Result<Vec<_>, ApiError>>()?;
        self.run(ctx, move |ctx| {
            let w = ops::upsert_documents(ctx, &r.collection, docs)?;
            Ok(pb::UpsertDocumentsResponse { documents: w.documents as u64, chunks: w.chunks as u64, seq: w.seq })
        })
        .await
    }

    async fn delete_documents(
        &self,
        req: Request<pb::DeleteDocumentsRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let ctx = self.ctx(&req, "DeleteDocuments", Self::collection(&req.get_ref().collection)).await?;
        let r = req.into_inner();
        self.run(ctx, move |ctx| {
            let deleted = ctx.collection(&r.collection)?.delete_documents(&r.ids)?;
            Ok(pb::DeleteResponse { deleted: deleted as u64 })
        })
        .await
    }

    async fn query(&self, req: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        let started = Instant::now();
        let ctx = self.ctx(&req, "Query", Self::collection(&req.get_ref().collection)).await?;
        let mut r = req.into_inner();
        let collection = std::mem::take(&mut r.collection);
        let search = convert::query_body(r)?.into_request()?;
        self.run(ctx, move |ctx| {
            let hits = ops::search(ctx, &collection, &search)?;
            let results = hits.into_iter().map(convert::scored_to_pb).collect();
            Ok(pb::QueryResponse { results, took_ms: started.elapsed().as_secs_f64() * 1e3 })
        })
        .await
    }

    type RagStream = tokio_stream::wrappers::ReceiverStream<Result<pb::RagEvent, Status>>;

    async fn rag(&self, req: Request<pb::RagRequest>) -> Result<Response<Self::RagStream>, Status> {
        let ctx = self.ctx(&req, "Rag", Self::collection(&req.get_ref().collection)).await?;
        let mut r = req.into_inner();
        let name = std::mem::take(&mut r.collection);
        let rag = convert::rag_body(r)?.into_request(&self.state.generator_hosts)?;
        let collection = ctx.collection(&name)?;
        collection.check_rag(&rag).map_err(ApiError::from)?;
        let (c, question) = (collection.clone(), rag.question.clone());
        blocking(move || ops::charge_query_text(&ctx, &c, Some(&question), true)).await?;
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

    async fn create_tenant(&self, req: Request<pb::CreateTenantRequest>) -> Result<Response<pb::Tenant>, Status> {
        let ctx = self.ctx(&req, "CreateTenant", Target::default()).await?;
        let r = req.into_inner();
        self.run(ctx, move |ctx| {
            let t = ctx.tenancy().create_tenant(&r.name, tenants::quotas_from_pb(r.quotas))?;
            Ok(tenants::tenant_to_pb(t))
        })
        .await
    }

    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let ctx = self.ctx(&req, "ListTenants", Target::default()).await?;
        self.run(ctx, |ctx| {
            let tenants = ctx.tenancy().registry.tenants().into_iter().map(tenants::tenant_to_pb).collect();
            Ok(pb::ListTenantsResponse { tenants })
        })
        .await
    }

    async fn get_tenant(&self, req: Request<pb::GetTenantRequest>) -> Result<Response<pb::TenantDetails>, Status> {
        let ctx = self.ctx(&req, "GetTenant", Self::tenant(&req.get_ref().name)).await?;
        let name = req.into_inner().name;
        self.run(ctx, move |ctx| {
            let (quotas, created_at, usage, counters) = ctx.tenancy().details(&name)?;
            let created_at = created_at.map(crate::tenancy::clock::format).unwrap_or_default();
            let tenant = pb::Tenant { name, quotas: Some(tenants::quotas_to_pb(quotas)), created_at };
            Ok(pb::TenantDetails { tenant: Some(tenant), usage: Some(tenants::usage_to_pb(usage, counters)) })
        })
        .await
    }

    async fn update_tenant(&self, req: Request<pb::UpdateTenantRequest>) -> Result<Response<pb::Tenant>, Status> {
        let ctx = self.ctx(&req, "UpdateTenant", Self::tenant(&req.get_ref().name)).await?;
        let r = req.into_inner();
        self.run(ctx, move |ctx| {
            let t = ctx.tenancy().registry.update_tenant(&r.name, tenants::quotas_from_pb(r.quotas))?;
            Ok(tenants::tenant_to_pb(t))
        })
        .await
    }

    async fn delete_tenant(
        &self,
        req: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        let ctx = self.ctx(&req, "DeleteTenant", Self::tenant(&req.get_ref().name)).await?;
        let name = req.into_inner().name;
        let r = match crate::jobs::delete_tenant(&self.state, ctx.clone(), name.clone()).await {
            Ok(true) => Ok(pb::DeleteTenantResponse { deleted: true }),
            Ok(false) => Err(crate::tenancy::registry::tenant_not_found(&name)),
            Err(e) => Err(e),
        };
        ctx.finish(r.as_ref().map(|_| ()).map_err(|e| e.kind));
        Ok(Response::new(r?))
    }

    async fn create_key(&self, req: Request<pb::CreateKeyRequest>) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let ctx = self.ctx(&req, "CreateKey", Self::tenant(&req.get_ref().tenant)).await?;
        let r = req.into_inner();
        self.run(ctx, move |ctx| {
            let body = crate::http::tenants::KeyBody {
                role: tenants::role_from_pb(r.role)?,
                collections: (!r.collections.is_empty()).then_some(r.collections),
                expires_at: r.expires_at.map(serde_json::Value::String),
                requests_per_second: r.requests_per_second,
            };
            let key = crate::http::tenants::new_key(ctx, &r.tenant, body)?;
            let (k, text) = ctx.tenancy().registry.create_key(key)?;
            Ok(pb::CreateKeyResponse { key: text, info: Some(tenants::key_to_pb(k)) })
        })
        .await
    }

    async fn list_keys(&self, req: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        let ctx = self.ctx(&req, "ListKeys", Self::tenant(&req.get_ref().tenant)).await?;
        let tenant = req.into_inner().tenant;
        self.run(ctx, move |ctx| {
            Ok(pb::ListKeysResponse {
                keys: ctx.tenancy().keys(&tenant)?.into_iter().map(tenants::key_to_pb).collect(),
            })
        })
        .await
    }

    async fn revoke_key(&self, req: Request<pb::RevokeKeyRequest>) -> Result<Response<pb::RevokeKeyResponse>, Status> {
        let ctx = self.ctx(&req, "RevokeKey", Self::tenant(&req.get_ref().tenant)).await?;
        let r = req.into_inner();
        self.run(ctx, move |ctx| match ctx.tenancy().registry.revoke(&r.tenant, &r.id)? {
            true => Ok(pb::RevokeKeyResponse { revoked: true }),
            false => Err(ApiError::not_found(format!("key {:?} not found in tenant {:?}", r.id, r.tenant))),
        })
        .await
    }

    async fn list_audit(&self, req: Request<pb::ListAuditRequest>) -> Result<Response<pb::ListAuditResponse>, Status> {
        let ctx = self.ctx(&req, "ListAudit", Target::default()).await?;
        let r = req.into_inner();
        let q = crate::http::tenants::audit_query(r.tenant, r.action, r.since, r.after, r.limit.map(|l| l as usize))?;
        self.run(ctx, move |ctx| {
            let (entries, next) = ctx.tenancy().audit.read(&q)?;
            Ok(pb::ListAuditResponse { entries: entries.into_iter().map(tenants::audit_to_pb).collect(), next })
        })
        .await
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
    tls: Option<Arc<rustls::ServerConfig>>,
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
    let limit = state.body_limit;
    let auth_state = state.clone();
    let service = NakshaServer::new(NakshaService { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(GRPC_MAX_REPLY_BYTES);
    // Reflection describes the whole API: any valid credential may read it.
    let auth = move |req: Request<()>| -> Result<Request<()>, Status> {
        let given = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        auth_state.tenancy()?.authenticate(given)?;
        Ok(req)
    };
    // Limits against slow or hostile clients: streams per connection, HTTP/2
    // pings to find dead peers, TCP keep-alive. Reflection needs the key too
    // (it describes the whole API); health stays open, as /healthz does.
    let router = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(GRPC_STREAMS_PER_CONNECTION)
        .max_concurrent_streams(Some(GRPC_STREAMS_PER_CONNECTION as u32))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health)
        .add_service(tonic::service::interceptor::InterceptedService::new(reflection_v1, auth.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(reflection_v1alpha, auth.clone()))
        .add_service(service);
    match tls {
        None => {
            let incoming = tonic::transport::server::TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(Duration::from_secs(60)));
            router.serve_with_incoming_shutdown(incoming, shutdown).await?
        }
        Some(config) => router.serve_with_incoming_shutdown(tls_incoming(listener, config), shutdown).await?,
    }
    Ok(())
}

/// TLS connections from `listener`: each handshake runs on its own task (a
/// slow client holds up nobody) and must finish within 10 seconds.
fn tls_incoming(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> tokio_stream::wrappers::ReceiverStream<Result<crate::tls::TlsConn, std::io::Error>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                () = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "gRPC accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(crate::tls::TlsConn(tls))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "gRPC TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "gRPC TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
