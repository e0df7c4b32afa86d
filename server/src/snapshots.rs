//! Snapshots and S3 backups wired to the server: snapshots taken on the
//! blocking pool and counted in the metrics, uploads of new snapshots, and
//! the backup schedule over every tenant, audited ([`crate::backup`] holds
//! the bucket and the cron rules; `http::snapshots` the routes).

use std::sync::Arc;
use std::time::Instant;

use naksha_query::{Database, SnapshotInfo};

use crate::backup::Backups;
use crate::error::ApiError;
use crate::state::{blocking, AppState};

/// Take a snapshot on the blocking pool, counted in the metrics.
pub async fn create_local(state: &AppState, db: Arc<Database>, name: String) -> Result<SnapshotInfo, ApiError> {
    let started = Instant::now();
    let made = blocking(move || Ok(db.snapshot(&name)?)).await;
    let bytes = made.as_ref().map_or(0, |i| i.size_bytes);
    state.metrics.snapshot_op("create", made.is_ok(), bytes, started.elapsed().as_secs_f64());
    made
}

/// Run the backup schedule until `stop`: at each firing, snapshot every
/// collection of every tenant, upload it under `scheduled/`, remove the local
/// archive once uploaded, then apply retention per tenant. Failures are
/// logged, counted and audited; the next firing tries again.
pub async fn run_schedule(
    state: std::sync::Weak<AppState>,
    backups: Arc<Backups>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let Some(schedule) = backups.schedule.clone() else { return };
    tokio::pin!(stop);
    loop {
        let now = crate::tenancy::clock::now();
        let Some(next) = schedule.next_after(now) else {
            tracing::warn!("backup.schedule never fires again");
            return;
        };
        let wait =
            std::time::Duration::from_millis(u64::try_from(next * 1000 - crate::tenancy::clock::now_ms()).unwrap_or(0));
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(wait) => {}
        }
        let Some(state) = state.upgrade() else { return };
        let Ok(tenancy) = state.tenancy() else { continue };
        let mut tenants = vec![crate::tenancy::registry::DEFAULT_TENANT.to_owned()];
        tenants.extend(tenancy.registry.tenants().into_iter().map(|t| t.name));
        for tenant in tenants {
            scheduled_backup(&state, &backups, &tenancy, &tenant).await;
        }
    }
}

async fn scheduled_backup(state: &AppState, backups: &Backups, tenancy: &Arc<crate::tenancy::Tenancy>, tenant: &str) {
    let t = tenancy.clone();
    let name = tenant.to_owned();
    let db = match blocking(move || t.pool.get(&name, || t.exists(&name))).await {
        Ok(db) => db,
        Err(e) => {
            tracing::warn!(tenant, error = e.message, "scheduled backup: cannot open the tenant");
            return;
        }
    };
    for (collection, _) in db.list() {
        let started = Instant::now();
        let result = upload_new_snapshot(state, backups, &db, tenant, &collection, true).await;
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.message.clone());
        if let Err(e) = &outcome {
            tracing::error!(tenant, collection, error = %e, "scheduled backup failed");
        } else {
            tracing::info!(
                tenant,
                collection,
                took_ms = started.elapsed().as_millis() as u64,
                "scheduled backup uploaded"
            );
        }
        tenancy.audit_system(tenant, "snapshots.scheduled", &format!("collections/{collection}/snapshots"), outcome);
    }
    match backups.apply_retention(tenant).await {
        Ok(deleted) if !deleted.is_empty() => {
            tracing::info!(tenant, deleted = deleted.len(), "backup retention pruned")
        }
        Ok(_) => {}
        Err(e) => tracing::error!(tenant, error = e.message, "backup retention failed"),
    }
}

/// Snapshot `collection` and upload it (on demand, or `scheduled`); a
/// scheduled snapshot's local archive is removed once it is in the bucket.
/// Returns the snapshot and its key.
pub async fn upload_new_snapshot(
    state: &AppState,
    backups: &Backups,
    db: &Arc<Database>,
    tenant: &str,
    collection: &str,
    scheduled: bool,
) -> Result<(SnapshotInfo, String), ApiError> {
    let info = create_local(state, db.clone(), collection.to_owned()).await?;
    let (path, _) = db.snapshot_archive(collection, &info.id)?;
    let key = backups.key(tenant, &info, scheduled);
    let started = Instant::now();
    let sent = backups.upload(&path, &key, &info).await;
    state.metrics.snapshot_op("upload", sent.is_ok(), *sent.as_ref().unwrap_or(&0), started.elapsed().as_secs_f64());
    sent?;
    if scheduled {
        let (db, c, id) = (db.clone(), collection.to_owned(), info.id.clone());
        blocking(move || Ok(db.delete_snapshot(&c, &id)?)).await?;
    }
    Ok((info, key))
}
