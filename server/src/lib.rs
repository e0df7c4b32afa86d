//! The `naksha` server: HTTP over the Naksha engine, settings, metrics and the
//! operator CLI's client.
//!
//! [`run`] binds the listener first (so `/healthz` answers and `/readyz` says
//! 503 during recovery), opens the data directory on the blocking pool, then
//! serves until the shutdown future resolves; in-flight requests finish, and
//! every acknowledged write is already fsynced in the WAL.
#![forbid(unsafe_code)]

pub mod backup;
pub mod bounded;
pub mod cli;
pub mod error;
pub mod grpc;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod ops;
pub mod schema;
pub mod settings;
pub mod snapshots;
pub mod state;
pub mod tenancy;
pub mod tls;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use naksha_query::{Database, EngineOptions};

use crate::settings::Settings;
use crate::state::AppState;
use crate::tenancy::Tenancy;

/// Serve until `shutdown` resolves.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.server.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", settings.server.http_addr))?;
    let grpc_listener = tokio::net::TcpListener::bind(settings.server.grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {}", settings.server.grpc_addr))?;
    let (addr, grpc_addr) = (listener.local_addr()?, grpc_listener.local_addr()?);
    tracing::info!(http_addr = %addr, grpc_addr = %grpc_addr, data_dir = %settings.storage.data_dir.display(), "listening");
    for a in [addr, grpc_addr] {
        if !a.ip().is_loopback() {
            tracing::warn!(addr = %a, auth = !settings.server.api_key.is_empty(), tls = !settings.server.tls_cert_file.is_empty(), "listening beyond loopback");
        }
    }
    let backups = backup::Backups::connect(&settings.backup).await.map_err(anyhow::Error::msg)?.map(Arc::new);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let state = Arc::new(AppState {
        tenancy: OnceLock::new(),
        ready: Default::default(),
        metrics: Default::default(),
        body_limit: settings.server.body_limit_bytes,
        generator_hosts: settings.server.generator_hosts.clone(),
        policy: http::guard::Policy::new(addr, &settings.server),
        jobs: OnceLock::new(),
        backups: backups.clone(),
        restore_dirs: settings.backup.restore_dirs.clone(),
    });
    if let Some(b) = backups.filter(|b| b.schedule.is_some()) {
        tracing::info!(bucket = %b.bucket, schedule = %settings.backup.schedule, "scheduled backups on");
        tokio::spawn(snapshots::run_schedule(Arc::downgrade(&state), b, stopped(stop_rx.clone())));
    }
    let options = EngineOptions {
        flush_points: settings.storage.flush_points,
        max_memtable_points: settings.storage.flush_points.saturating_mul(4),
        merge_min_segments: settings.storage.merge_min_segments,
        ..EngineOptions::default()
    };
    let dir = settings.storage.data_dir.clone();
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let recover_state = state.clone();
    let (reporter, health) = grpc::health().await;
    let (models_dir, device) = (settings.models.dir.clone(), settings.models.device.clone());
    let tenancy_options = tenancy_options(&settings)?;
    let jobs_options = naksha_ingest::Options {
        dir: settings.storage.data_dir.join("jobs"),
        import_dirs: settings.jobs.import_dirs.clone(),
        max_concurrent: settings.jobs.max_concurrent,
        keep_finished: settings.jobs.keep_finished,
        retry_backoff: Duration::from_millis(settings.jobs.retry_backoff_ms),
    };
    let recovered = tokio::task::spawn_blocking(move || -> anyhow::Result<(Arc<Tenancy>, naksha_ingest::Jobs)> {
        let device = device.parse()?;
        let models = naksha_query::embed::Models::open(&models_dir, device)
            .with_context(|| format!("cannot load embedding models from {}", models_dir.display()))?;
        tracing::info!(dir = %models_dir.display(), models = models.list().len(), "embedding models loaded");
        let options = EngineOptions { models, ..options };
        let db = Database::open_with(&dir, options.clone())
            .with_context(|| format!("cannot open data directory {}", dir.display()))?;
        let tenancy = Arc::new(Tenancy::open(Arc::new(db), options, tenancy_options).map_err(anyhow::Error::msg)?);
        let sinks = Arc::new(jobs::TenantSinks { tenancy: Arc::downgrade(&tenancy) });
        let jobs = naksha_ingest::Jobs::open(jobs_options, sinks).context("cannot open the job records")?;
        Ok((tenancy, jobs))
    });
    tokio::spawn(async move {
        match recovered.await {
            Ok(Ok((tenancy, jobs))) => {
                let n = tenancy.pool.root().list().len();
                tracing::info!(tenants = tenancy.registry.tenant_count(), "tenants loaded");
                let _ = recover_state.tenancy.set(tenancy);
                jobs.resume();
                let _ = recover_state.jobs.set(jobs);
                // Readiness flips last, once every front end reports serving.
                grpc::mark_serving(&reporter).await;
                recover_state.ready.store(true, std::sync::atomic::Ordering::Release);
                tracing::info!(collections = n, "recovery finished; ready");
            }
            Ok(Err(e)) => {
                let _ = failed_tx.send(e);
            }
            Err(e) => {
                let _ = failed_tx.send(anyhow::Error::new(e).context("recovery task failed"));
            }
        }
    });
    let failed = Arc::new(tokio::sync::Mutex::new(None));
    let failed_slot = failed.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => tracing::info!("shutting down: finishing in-flight requests"),
            Ok(e) = failed_rx => { *failed_slot.lock().await = Some(e); }
        }
        let _ = stop_tx.send(true);
    });
    tokio::spawn(close_idle_tenants(
        Arc::downgrade(&state),
        Duration::from_secs(settings.tenants.idle_close_secs),
        stopped(stop_rx.clone()),
    ));
    let (http_tls, grpc_tls) = match (settings.server.tls_cert_file.as_str(), settings.server.tls_key_file.as_str()) {
        ("", _) | (_, "") => (None, None),
        (cert, key) => {
            let certs = tls::Certificates::open(cert.as_ref(), key.as_ref()).map_err(anyhow::Error::msg)?;
            tokio::spawn(tls::reload_on_sighup(certs.clone(), stopped(stop_rx.clone())));
            tracing::info!(cert, "TLS on for HTTP and gRPC");
            (
                Some(certs.server_config(&[b"http/1.1"]).map_err(anyhow::Error::msg)?),
                Some(certs.server_config(&[b"h2"]).map_err(anyhow::Error::msg)?),
            )
        }
    };
    let grpc = tokio::spawn(grpc::serve(grpc_listener, grpc_tls, state.clone(), health, stopped(stop_rx.clone())));
    let limits = http::serve::Limits {
        max_connections: settings.server.max_connections,
        header_read_timeout: Duration::from_secs(settings.server.header_read_timeout_secs),
        shutdown_timeout: Duration::from_secs(settings.server.shutdown_timeout_secs),
    };
    http::serve::serve(listener, http::router(state.clone()), limits, http_tls, stopped(stop_rx)).await?;
    match tokio::time::timeout(limits.shutdown_timeout, grpc).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!("gRPC streams still open at the shutdown timeout; closing them"),
    }
    if let Some(jobs) = state.jobs.get() {
        // Running jobs stop where they are and resume from their checkpoints at the next start.
        jobs.shutdown().await;
    }
    if let Some(e) = failed.lock().await.take() {
        return Err(e);
    }
    // Dropping the database stops background flushes and merges; the WAL already holds every acknowledged write,
    // so a stop that cannot wait for a long merge loses nothing (an unfinished segment is removed at the next open).
    if let Some(tenancy) = state.tenancy.get() {
        let tenancy = tenancy.clone();
        drop(state);
        let closing = tokio::task::spawn_blocking(move || drop(tenancy));
        if tokio::time::timeout(limits.shutdown_timeout, closing).await.is_err() {
            tracing::warn!("background work still running at the shutdown timeout; exiting anyway (every acknowledged write is in the WAL)");
        }
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// The tenancy settings: admin key, JWT keys (read from their files now, so a
/// bad file stops the start), pool and audit sizes.
fn tenancy_options(s: &Settings) -> anyhow::Result<tenancy::Options> {
    let mut pems = Vec::new();
    for f in &s.auth.jwt_public_key_files {
        let pem = fs_err::read(f).context("auth.jwt_public_key_files")?;
        pems.push((f.display().to_string(), pem));
    }
    let jwt = tenancy::jwt::Verifier::new(&s.auth.jwt_secret, &pems).map_err(anyhow::Error::msg)?;
    Ok(tenancy::Options {
        admin_key: s.server.api_key.clone(),
        jwt,
        max_open: s.tenants.max_open,
        audit_max_file_bytes: s.audit.max_file_bytes,
        audit_keep_files: s.audit.keep_files,
    })
}

/// Close tenants left idle, until the server stops.
async fn close_idle_tenants(
    state: std::sync::Weak<AppState>,
    idle: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(every) => {}
        }
        let Some(tenancy) = state.upgrade().and_then(|s| s.tenancy.get().cloned()) else { continue };
        let _ = tokio::task::spawn_blocking(move || {
            let closed = tenancy.pool.close_idle(idle);
            if closed > 0 {
                tracing::debug!(closed, "closed idle tenants");
            }
        })
        .await;
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
