//! Ingestion jobs ([`naksha_ingest`]) wired to tenancy: a job writes into its
//! tenant's collection as the principal that created it, within the tenant's
//! quotas, and belongs to that tenant (listed, read and cancelled only there,
//! forgotten with it).

use std::sync::{Arc, Weak};

use naksha_ingest::{Error as IngestError, Sink, Sinks};
use naksha_query::{Collection, Document, Point};
use serde_json::{json, Value};

use crate::error::{ApiError, Kind};
use crate::tenancy::{Ctx, Principal, Role, Tenancy};

/// Opens a job's sink through [`Tenancy`].
#[derive(Debug)]
pub struct TenantSinks {
    /// Weak: the tenancy owns the databases, jobs only borrow them.
    pub tenancy: Weak<Tenancy>,
}

/// What a job records of its creator.
pub fn owner(p: &Principal) -> Value {
    json!({"key_id": p.key_id, "role": p.role, "collections": p.collections})
}

fn principal(tenant: &str, owner: &Value) -> Result<Principal, IngestError> {
    let role: Role =
        serde_json::from_value(owner["role"].clone()).map_err(|e| IngestError::Failed(format!("job owner: {e}")))?;
    let collections = serde_json::from_value(owner["collections"].clone()).unwrap_or(None);
    Ok(Principal {
        key_id: owner["key_id"].as_str().unwrap_or("job").to_owned(),
        tenant: tenant.to_owned(),
        role,
        collections,
        requests_per_second: None,
    })
}

/// An API error as a job sees it: throttling and unavailability are retried.
pub fn to_ingest(e: ApiError) -> IngestError {
    match e.kind {
        Kind::RateLimited | Kind::Unavailable => IngestError::Transient(e.message),
        Kind::InvalidArgument | Kind::Unprocessable => IngestError::Invalid(e.message),
        Kind::NotFound => IngestError::NotFound(e.message),
        Kind::PermissionDenied => IngestError::Forbidden(e.message),
        _ => IngestError::Failed(e.message),
    }
}

/// A job error as the API reports it.
pub fn to_api(e: IngestError) -> ApiError {
    match e {
        IngestError::Invalid(m) => ApiError::invalid(m),
        IngestError::Forbidden(m) => ApiError::denied(m),
        IngestError::NotFound(m) => ApiError::not_found(m),
        IngestError::Conflict(m) => ApiError::new(Kind::Conflict, m),
        IngestError::Transient(m) => ApiError::unavailable(m),
        IngestError::Failed(m) => ApiError::new(Kind::InvalidArgument, m),
        IngestError::Stopped => ApiError::unavailable("the server is stopping"),
    }
}

impl Sinks for TenantSinks {
    fn open(&self, tenant: &str, owner: &Value, collection: &str) -> Result<Arc<dyn Sink>, IngestError> {
        let tenancy = self.tenancy.upgrade().ok_or_else(|| IngestError::Transient("the server is stopping".into()))?;
        let ctx = tenancy.background(principal(tenant, owner)?, tenant, "jobs.run").map_err(to_ingest)?;
        Ok(Arc::new(TenantSink { ctx, collection: collection.to_owned() }))
    }
}

struct TenantSink {
    ctx: Ctx,
    collection: String,
}

impl Sink for TenantSink {
    fn collection(&self) -> Result<Arc<Collection>, IngestError> {
        self.ctx.collection(&self.collection).map_err(to_ingest)
    }

    fn upsert_points(&self, points: Vec<Point>) -> Result<(), IngestError> {
        crate::ops::upsert_points(&self.ctx, &self.collection, points).map(|_| ()).map_err(to_ingest)
    }

    fn upsert_documents(&self, docs: Vec<Document>) -> Result<usize, IngestError> {
        crate::ops::upsert_documents(&self.ctx, &self.collection, docs).map(|w| w.chunks).map_err(to_ingest)
    }
}

/// Delete a tenant with its jobs (cancelled first, so none writes into a
/// removed database); `false` when there was no such tenant.
pub async fn delete_tenant(state: &crate::state::AppState, ctx: Arc<Ctx>, name: String) -> Result<bool, ApiError> {
    if name != crate::tenancy::registry::DEFAULT_TENANT && ctx.tenancy().exists(&name) {
        state.jobs()?.forget_tenant(&name).await.map_err(to_api)?;
    }
    crate::state::blocking(move || ctx.tenancy().delete_tenant(&name)).await
}
