//! The HTTP API of `shared/API.md`, on axum.
//!
//! | file             | routes                                                        |
//! |------------------|---------------------------------------------------------------|
//! | `mod.rs`         | router, auth/metrics/panic layers, health, metrics, OpenAPI   |
//! | `collections.rs` | `PUT/GET/DELETE /v1/collections[/{name}]`                     |
//! | `points.rs`      | upsert (JSON, NDJSON), get, delete                            |
//! | `query.rs`       | `POST /v1/collections/{name}/query`                           |
//! | `rag.rs`         | `POST /v1/collections/{name}/rag` (JSON or server-sent events) |
//! | `embed.rs`       | `GET /v1/models`, `POST /v1/embed`, documents (chunked)       |
//! | `tenants.rs`     | tenants, their keys, the audit log                            |
//! | `jobs.rs`        | ingestion jobs: create, list, get, cancel                     |
//! | `snapshots.rs`   | snapshots, downloads, restores, S3 backups                    |
//! | `access.rs`      | each route's operation name and [`crate::tenancy::Action`]     |
//! | `guard.rs`       | Host/Origin/CORS, media type, URI and body-size checks        |
//! | `serve.rs`       | the accept loop: connection cap, header and idle timeouts     |
//!
//! Bodies parse into the request model of [`crate::ops`] (shared with gRPC);
//! the state is [`crate::state::AppState`], errors are [`crate::error::ApiError`].
//!
//! Engine calls block (fsync, search), so they run on tokio's blocking pool,
//! never on the async workers.

pub mod access;
mod collections;
mod embed;
pub mod guard;
pub mod jobs;
pub mod points;
pub mod query;
mod rag;
pub mod serve;
pub mod snapshots;
pub mod tenants;

use std::any::Any;
use std::sync::{Arc, OnceLock};

pub use crate::state::{blocking, AppState};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use naksha_query::HealthStatus;
use serde::de::DeserializeOwned;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::{ApiError, ErrorBody};

/// Parse a JSON body with the parser's message on failure, and 413 past the limit.
pub fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<T, ApiError> {
    let bytes = body_bytes(body, limit)?;
    crate::ops::decode_json(&bytes)
}

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::too_large(limit)
        }
        other if body_timed_out(&other) => ApiError::new(
            crate::error::Kind::RequestTimeout,
            "the request body stalled past server.body_read_timeout_secs",
        ),
        other => ApiError::invalid(format!("cannot read the request body: {other}")),
    })
}

/// Whether reading a body failed on [`guard`]'s body timeout.
fn body_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The full router with every layer.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/collections", get(collections::list))
        .route("/v1/collections/{name}", get(collections::info).put(collections::create).delete(collections::delete))
        .route("/v1/collections/{name}/points", post(points::upsert))
        .route("/v1/collections/{name}/points/delete", post(points::delete))
        .route("/v1/collections/{name}/points/{id}", get(points::get))
        .route("/v1/collections/{name}/query", post(query::query))
        .route("/v1/collections/{name}/rag", post(rag::rag))
        .route("/v1/collections/{name}/documents", post(embed::upsert_documents))
        .route("/v1/collections/{name}/documents/delete", post(embed::delete_documents))
        .route("/v1/models", get(embed::models))
        .route("/v1/embed", post(embed::embed))
        .route("/v1/tenants", get(tenants::list).post(tenants::create))
        .route("/v1/tenants/{tenant}", get(tenants::info).patch(tenants::update).delete(tenants::delete))
        .route("/v1/tenants/{tenant}/keys", get(tenants::list_keys).post(tenants::create_key))
        .route("/v1/tenants/{tenant}/keys/{id}", axum::routing::delete(tenants::revoke_key))
        .route("/v1/audit", get(tenants::audit))
        .route("/v1/jobs", get(jobs::list).post(jobs::create))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/collections/{name}/snapshots", get(snapshots::list).post(snapshots::create))
        .route("/v1/collections/{name}/snapshots/{id}", get(snapshots::download).delete(snapshots::delete))
        .route("/v1/collections/{name}/snapshots/{id}/restore", post(snapshots::restore))
        .route("/v1/snapshots", get(snapshots::list_all).post(snapshots::create_all))
        .route("/v1/snapshots/restore", post(snapshots::restore_archive))
        .route("/v1/snapshots/s3", get(snapshots::list_s3))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    let open = Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz));
    with_layers(api.merge(open).fallback(not_found), state)
}

/// Layers shared by every route: request checks ([`guard`]), body limit,
/// metrics, panics turned into 500s, and JSON bodies on every error.
pub fn with_layers(router: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    let limit = state.body_limit;
    router
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), guard::check))
        .layer(middleware::from_fn(guard::json_errors))
        .with_state(state)
}

fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let what = err.downcast_ref::<String>().cloned().or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()));
    ApiError::internal(format!("handler panicked: {}", what.unwrap_or_default())).into_response()
}

async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16();
    state.metrics.observe(&method, &route, status, started.elapsed().as_secs_f64());
    tracing::debug!(%method, %route, status, took_ms = started.elapsed().as_secs_f64() * 1e3, "request");
    res
}

/// Authenticate, authorise (role, tenant, rate limits, collection scope; see
/// [`crate::tenancy`]), hand the handler its [`crate::tenancy::Ctx`], and
/// record audited outcomes.
async fn auth(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let tenancy = match state.tenancy() {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let access = match access::describe(&mut req, &route).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let who = tenancy.authenticate(req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
    // Most requests are decided at once; a refusal (audited, fsynced), a
    // rate limit that may refuse, or a tenant to open goes to the blocking pool.
    let decided = match tenancy.decides_without_blocking(&who, &access) {
        true => tenancy.authorize(who, access),
        false => blocking(move || tenancy.authorize(who, access)).await,
    };
    let ctx = match decided {
        Ok(ctx) => Arc::new(ctx),
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert(ctx.clone());
    let res = next.run(req).await;
    let outcome = match res.status().is_success() {
        true => Ok(()),
        false => {
            Err(res.extensions().get::<crate::error::Kind>().copied().unwrap_or_else(|| access::kind_of(res.status())))
        }
    };
    if ctx.audited() {
        let _ = blocking(move || {
            ctx.finish(outcome);
            Ok(())
        })
        .await;
    }
    res
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz", responses((status = 200, body = Status)))]
async fn healthz() -> Response {
    json_response(StatusCode::OK, &Status { status: "ok".into(), collections: Vec::new() })
}

/// 200 once recovery has finished, 503 before. `status` is `degraded` (still
/// 200: reads are served) while a collection's background work fails or its
/// WAL is read-only; `collections` then names them and says why.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz", responses((status = 200, body = Status), (status = 503, body = ErrorBody)))]
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let Some(db) = state
        .tenancy
        .get()
        .filter(|_| state.ready.load(std::sync::atomic::Ordering::Acquire))
        .map(|t| t.pool.root().clone())
    else {
        return ApiError::unavailable("recovering").into_response();
    };
    let unhealthy = tokio::task::spawn_blocking(move || {
        db.collections()
            .into_iter()
            .filter_map(|(name, c)| {
                let (status, error) = c.health();
                (status != HealthStatus::Ok).then_some(CollectionHealth { name, status, error })
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let status = if unhealthy.is_empty() { "ready" } else { "degraded" };
    json_response(StatusCode::OK, &Status { status: status.into(), collections: unhealthy })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "openapi", responses((status = 200, description = "OpenAPI 3.1 JSON")))]
async fn openapi() -> Response {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    json_response(StatusCode::OK, DOC.get_or_init(document))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let s = state.clone();
    let text = blocking(move || Ok(s.metrics.render(s.tenancy.get().map(|t| t.as_ref()), s.jobs.get()))).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn not_found(req: Request<Body>) -> ApiError {
    ApiError::not_found(format!("no route for {} {}", req.method(), req.uri().path()))
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (status, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Health and readiness replies.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok` (healthz), `ready` or `degraded` (readyz).
    pub status: String,
    /// Collections that are not `ok` (readyz only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<CollectionHealth>,
}

/// A collection that is not healthy.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CollectionHealth {
    /// Collection name.
    pub name: String,
    /// `degraded` or `read_only`.
    #[schema(value_type = crate::schema::HealthStatus)]
    pub status: HealthStatus,
    /// What is failing.
    pub error: Option<String>,
}

/// The OpenAPI document: generated from the handlers and types, with the
/// engine schemas of [`crate::schema`] filled in.
pub fn document() -> serde_json::Value {
    use utoipa::OpenApi;
    crate::schema::document(ApiDoc::openapi(), &crate::error::Kind::ALL.map(crate::error::Kind::code))
}

/// The OpenAPI paths and types, generated from the handlers and the types above.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(
        title = "Naksha HTTP API",
        version = "1",
        description = "Vector search database: collections, points, queries, embeddings, documents, tenants and keys, ingestion jobs, snapshots and backups. Credentials: Authorization: Bearer <key or JWT>; an admin addresses a tenant with X-Naksha-Tenant."
    ),
    paths(
        healthz,
        readyz,
        metrics,
        openapi,
        collections::list,
        collections::create,
        collections::info,
        collections::delete,
        points::upsert,
        points::get,
        points::delete,
        query::query,
        rag::rag,
        embed::models,
        embed::embed,
        embed::upsert_documents,
        embed::delete_documents,
        tenants::create,
        tenants::list,
        tenants::info,
        tenants::update,
        tenants::delete,
        tenants::create_key,
        tenants::list_keys,
        tenants::revoke_key,
        tenants::audit,
        jobs::create,
        jobs::list,
        jobs::get,
        jobs::cancel,
        snapshots::create,
        snapshots::list,
        snapshots::download,
        snapshots::delete,
        snapshots::restore,
        snapshots::create_all,
        snapshots::list_all,
        snapshots::restore_archive,
        snapshots::list_s3
    )
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    fn state() -> Arc<AppState> {
        Arc::new(AppState {
            tenancy: OnceLock::new(),
            ready: Default::default(),
            metrics: crate::metrics::Metrics::default(),
            body_limit: 1024,
            generator_hosts: Vec::new(),
            policy: guard::Policy::default(),
            jobs: OnceLock::new(),
            backups: None,
            restore_dirs: Vec::new(),
        })
    }

    async fn boom() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_500_and_the_server_lives_on() {
        let panicky: Router<Arc<AppState>> =
            Router::new().route("/boom", get(boom)).route("/ok", get(|| async { "fine" }));
        let app = with_layers(panicky, state());
        let res = app.clone().oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "internal");
        let res = app.oneshot(Request::get("/ok").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    /// CORS is an allow-list: allowed origins get the headers and preflight
    /// answers, others a 403 JSON error; the Host check applies before routing.
    #[tokio::test]
    async fn cors_allows_listed_origins_only() {
        let mut st = Arc::into_inner(state()).unwrap();
        st.policy = guard::Policy {
            allowed_hosts: Some(vec!["localhost".into()]),
            cors_origins: vec!["https://app.example".into()],
            body_timeout: None,
        };
        let app = router(Arc::new(st));
        let req = |method: &str, path: &str, origin: &str, host: &str| {
            Request::builder()
                .method(method)
                .uri(path)
                .header("host", host)
                .header("origin", origin)
                .body(Body::empty())
                .unwrap()
        };
        let res = app.clone().oneshot(req("GET", "/healthz", "https://app.example", "localhost:6480")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example");
        let res =
            app.clone().oneshot(req("OPTIONS", "/v1/collections", "https://app.example", "localhost")).await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert!(res.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
        assert!(res.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
        for (origin, host) in [("https://evil.example", "localhost"), ("https://app.example", "evil.example")] {
            let res = app.clone().oneshot(req("GET", "/healthz", origin, host)).await.unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{origin} {host}");
            assert!(res.headers().get("access-control-allow-origin").is_none());
            let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["code"], "permission_denied");
        }
    }

    #[tokio::test]
    async fn readiness_waits_for_recovery() {
        let app = router(state());
        let res = app.clone().oneshot(Request::get("/readyz").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let res = app.oneshot(Request::get("/v1/collections").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
