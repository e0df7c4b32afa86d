//! Tenants, API keys and roles, JWTs, quotas and rate limits, and the audit
//! log: who may do what to which tenant's data, shared by HTTP and gRPC.
//!
//! | file          | what                                                        |
//! |---------------|-------------------------------------------------------------|
//! | `mod.rs`      | roles, actions, [`Tenancy::authenticate`] and [`Tenancy::authorize`], [`Ctx`] (quota checks) |
//! | `registry.rs` | the durable log of tenants and keys (hashes only)           |
//! | `pool.rs`     | tenants' databases, opened on demand and closed when idle   |
//! | `limits.rs`   | token buckets (requests, embedding tokens) and counters     |
//! | `audit.rs`    | the append-only audit log, rotated by size                  |
//! | `jwt.rs`      | HS256 / RS256 / ES256 token verification                    |
//! | `secret.rs`   | random keys, SHA-256, constant-time comparison              |
//! | `clock.rs`    | RFC 3339 times                                              |
//!
//! Every request resolves to a [`Principal`] (the bootstrap admin key, a
//! tenant key, a JWT, or, with authentication off, an anonymous admin), then
//! to a [`Ctx`] for one tenant: a tenant credential always addresses its own
//! tenant, so another tenant's collections are unreachable by name; only
//! admins choose a tenant (`X-Naksha-Tenant`). Failures are decided before
//! any lookup, so a refusal says nothing about whether a resource exists.

pub mod audit;
pub mod clock;
pub mod jwt;
pub mod limits;
pub mod pool;
pub mod registry;
pub mod secret;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use naksha_query::{Collection, CollectionConfig, Database, EngineOptions, PointId};
use serde::{Deserialize, Serialize};

use self::audit::{AuditEntry, AuditLog};
use self::limits::Limits;
use self::pool::Pool;
use self::registry::{Registry, DEFAULT_TENANT};
use crate::error::{ApiError, Kind};

/// The header (and gRPC metadata key) with which an admin picks a tenant.
pub const TENANT_HEADER: &str = "x-naksha-tenant";
/// Longest credential accepted (a JWT with many collections fits easily).
pub const MAX_CREDENTIAL_BYTES: usize = 8192;

/// What a credential may do, from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Query, get, RAG, embed, list and describe collections.
    Reader,
    /// A reader that also writes points, documents and jobs.
    Writer,
    /// A writer that also creates and deletes its tenant's collections and manages its keys.
    TenantAdmin,
    /// Everything, on every tenant.
    Admin,
}

/// The kind of operation a route or gRPC method performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Describe the API (`/openapi.json`).
    Describe,
    /// Read data: list, get, query, RAG, embed.
    Read,
    /// Write points or documents.
    Write,
    /// Create or delete collections.
    Manage,
    /// Manage its own tenant's keys.
    Keys,
    /// See its own tenant and usage.
    TenantInfo,
    /// Tenants, the audit log, metrics: admins only.
    Admin,
}

impl Role {
    /// Whether this role may perform `action`.
    pub fn allows(self, action: Action) -> bool {
        match action {
            Action::Describe | Action::Read => true,
            Action::Write => self >= Role::Writer,
            Action::Manage | Action::Keys | Action::TenantInfo => self >= Role::TenantAdmin,
            Action::Admin => self == Role::Admin,
        }
    }

    /// `snake_case` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::TenantAdmin => "tenant_admin",
            Role::Admin => "admin",
        }
    }
}

impl Action {
    /// Whether successful requests are written to the audit log (failures always are).
    pub fn audited(self) -> bool {
        matches!(self, Action::Write | Action::Manage | Action::Keys | Action::Admin)
    }
}

/// A tenant's limits; `None`: unlimited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Collections at most.
    #[serde(default)]
    pub max_collections: Option<u64>,
    /// Live points at most, over all its collections.
    #[serde(default)]
    pub max_points: Option<u64>,
    /// Bytes on disk at most (segments and WAL), over all its collections.
    #[serde(default)]
    pub max_disk_bytes: Option<u64>,
    /// Requests per second (token bucket, bursts of one second's worth).
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Tokens embedded per minute (documents, `/v1/embed`, RAG and text queries on collections with a model).
    #[serde(default)]
    pub embed_tokens_per_minute: Option<u64>,
}

impl Quotas {
    /// Rates must be positive.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.requests_per_second.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return Err(ApiError::invalid("quotas.requests_per_second must be a positive number or null"));
        }
        if self.embed_tokens_per_minute == Some(0) {
            return Err(ApiError::invalid("quotas.embed_tokens_per_minute must be positive or null"));
        }
        Ok(())
    }
}

/// Who is asking.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// Key id for the audit log: a key's id, `bootstrap`, `jwt:{sub}` or `anonymous`.
    pub key_id: String,
    /// Home tenant.
    pub tenant: String,
    /// Role.
    pub role: Role,
    /// Collections it is limited to.
    pub collections: Option<Vec<String>>,
    /// Its own request rate limit.
    pub requests_per_second: Option<f64>,
}

impl Principal {
    fn admin(key_id: &str) -> Self {
        Self {
            key_id: key_id.into(),
            tenant: DEFAULT_TENANT.into(),
            role: Role::Admin,
            collections: None,
            requests_per_second: None,
        }
    }

    /// Whether its collection scope includes `name`.
    pub fn may_use(&self, name: &str) -> bool {
        self.collections.as_ref().is_none_or(|c| c.iter().any(|n| n == name))
    }
}

/// What a request wants, for [`Tenancy::authorize`].
#[derive(Clone, Debug)]
pub struct Access {
    /// Operation name for the audit log (`points.upsert`).
    pub op: &'static str,
    /// Its kind.
    pub action: Action,
    /// The collection it addresses.
    pub collection: Option<String>,
    /// The tenant named in the path (`/v1/tenants/{tenant}/...`).
    pub tenant_path: Option<String>,
    /// The `X-Naksha-Tenant` header.
    pub tenant_header: Option<String>,
    /// What it addresses, for the audit log (`collections/docs`).
    pub resource: String,
    /// Client address.
    pub client: Option<String>,
}

/// Settings of [`Tenancy`].
#[derive(Debug)]
pub struct Options {
    /// The bootstrap admin key (empty: none).
    pub admin_key: String,
    /// JWT verification, when configured.
    pub jwt: Option<jwt::Verifier>,
    /// Tenant databases open at most.
    pub max_open: usize,
    /// Audit file size before rotation.
    pub audit_max_file_bytes: u64,
    /// Rotated audit files kept.
    pub audit_keep_files: usize,
}

/// Tenants, keys, limits and the audit log of one node.
#[derive(Debug)]
pub struct Tenancy {
    /// Tenants and keys.
    pub registry: Registry,
    /// Open databases.
    pub pool: Pool,
    /// Buckets and counters.
    pub limits: Limits,
    /// The audit log.
    pub audit: AuditLog,
    admin_key: String,
    jwt: Option<jwt::Verifier>,
    /// Serialises size-quota checks with the writes they admit, per tenant.
    gates: parking_lot::Mutex<HashMap<String, Arc<parking_lot::Mutex<()>>>>,
}

/// Usage of one tenant.
#[derive(Clone, Copy, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// Collections.
    pub collections: u64,
    /// Live points.
    pub points: u64,
    /// Bytes on disk.
    pub disk_bytes: u64,
}

impl Tenancy {
    /// Open the registry and audit log under `root`'s data directory.
    pub fn open(root: Arc<Database>, engine: EngineOptions, o: Options) -> Result<Self, String> {
        let registry = Registry::open(&root.dir().join("tenancy")).map_err(|e| e.message)?;
        if o.admin_key.is_empty() && o.jwt.is_none() && !registry.is_empty() {
            return Err(format!(
                "the data directory has tenants or keys ({}) but no admin key is set: set NAKSHA_API_KEY (or server.api_key, \
                 or server.api_key_file) so that requests are authenticated",
                registry.path().display()
            ));
        }
        let audit = AuditLog::open(&root.dir().join("audit"), o.audit_max_file_bytes, o.audit_keep_files)
            .map_err(|e| e.message)?;
        let pool = Pool::new(root, engine, o.max_open);
        pool.clean_up(|t| registry.tenant(t).is_some()).map_err(|e| format!("cleaning up deleted tenants: {e}"))?;
        Ok(Self {
            registry,
            pool,
            limits: Limits::default(),
            audit,
            admin_key: o.admin_key,
            jwt: o.jwt,
            gates: Default::default(),
        })
    }

    /// True when no credential is configured: every request is an anonymous admin (single-user use).
    pub fn auth_off(&self) -> bool {
        self.admin_key.is_empty() && self.jwt.is_none()
    }

    /// Whether `name` is a tenant (the default one always is).
    pub fn exists(&self, name: &str) -> bool {
        name == DEFAULT_TENANT || self.registry.tenant(name).is_some()
    }

    /// The principal behind an `Authorization` value, or 401.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        if self.auth_off() {
            return Ok(Principal::admin("anonymous"));
        }
        let Some(token) = authorization.and_then(|v| v.strip_prefix("Bearer ")).map(str::trim) else {
            return Err(ApiError::unauthenticated());
        };
        if token.is_empty() || token.len() > MAX_CREDENTIAL_BYTES {
            return Err(ApiError::unauthenticated());
        }
        if !self.admin_key.is_empty() && secret::constant_time_eq(token.as_bytes(), self.admin_key.as_bytes()) {
            return Ok(Principal::admin("bootstrap"));
        }
        if token.starts_with(registry::KEY_PREFIX) {
            let key = self.registry.find(token).ok_or_else(ApiError::unauthenticated)?;
            if key.expires_at.is_some_and(|e| e <= clock::now()) {
                return Err(ApiError::unauthenticated());
            }
            return Ok(Principal {
                key_id: key.id,
                tenant: key.tenant,
                role: key.role,
                collections: key.collections,
                requests_per_second: key.requests_per_second,
            });
        }
        match &self.jwt {
            Some(v) if token.matches('.').count() == 2 => {
                let p = v.verify(token)?;
                if !self.exists(&p.tenant) {
                    return Err(ApiError::unauthenticated());
                }
                Ok(p)
            }
            _ => Err(ApiError::unauthenticated()),
        }
    }

    /// Decide a request: role, tenant, rate limits and collection scope, in
    /// that order, each refusal audited. Opens the tenant's database for data
    /// actions, so it may block.
    pub fn authorize(self: &Arc<Self>, who: Result<Principal, ApiError>, a: Access) -> Result<Ctx, ApiError> {
        let p = match who {
            Ok(p) => p,
            Err(e) => {
                self.record_failure(None, None, &a, "unauthenticated", &e);
                return Err(e);
            }
        };
        let fail = |tenant: Option<&str>, e: ApiError| {
            let outcome = match e.kind {
                Kind::RateLimited => "rate_limited",
                Kind::NotFound => "not_found",
                _ => "denied",
            };
            self.record_failure(Some(&p), tenant, &a, outcome, &e);
            Err(e)
        };
        let tenant = match self.resolve(&p, &a) {
            Ok(t) => t,
            Err((tenant, e)) => return fail(Some(&tenant), e),
        };
        let quotas = self.registry.tenant(&tenant).map(|t| t.quotas).unwrap_or_default();
        if p.role != Role::Admin {
            let limited = quotas
                .requests_per_second
                .map(|r| self.limits.request(&format!("tenant:{tenant}"), &format!("tenant {tenant:?}"), r))
                .unwrap_or(Ok(()))
                .and_then(|()| match p.requests_per_second {
                    Some(r) => self.limits.request(&format!("key:{}", p.key_id), "this key", r),
                    None => Ok(()),
                });
            if let Err(e) = limited {
                self.limits.count(&tenant, |c| c.rate_limited += 1);
                return fail(Some(&tenant), e);
            }
        }
        let db = match a.action {
            Action::Read | Action::Write | Action::Manage => match self.pool.get(&tenant, || self.exists(&tenant)) {
                Ok(db) => Some(db),
                Err(e) => return fail(Some(&tenant), e),
            },
            _ => None,
        };
        self.registry.touch(&p.key_id);
        self.limits.count(&tenant, |c| c.requests += 1);
        Ok(Ctx {
            tenancy: self.clone(),
            principal: p,
            tenant,
            quotas,
            db,
            op: a.op,
            action: a.action,
            resource: a.resource.clone(),
            client: a.client.clone(),
        })
    }

    /// The role check, the tenant a request addresses and the collection
    /// scope; on refusal, the tenant to audit it under and the error.
    fn resolve(&self, p: &Principal, a: &Access) -> Result<String, (String, ApiError)> {
        if !p.role.allows(a.action) {
            return Err((p.tenant.clone(), ApiError::denied(format!("a {} key may not {}", p.role.as_str(), a.op))));
        }
        let tenant = match (a.tenant_path.as_deref(), a.tenant_header.as_deref()) {
            (Some(t), _) if p.role == Role::Admin => t.to_owned(),
            // Another tenant's keys and info look exactly like a missing tenant's.
            (Some(t), _) if t != p.tenant => return Err((p.tenant.clone(), registry::tenant_not_found(t))),
            (Some(t), _) => t.to_owned(),
            (None, Some(h)) if p.role == Role::Admin => {
                if !self.exists(h) {
                    return Err((h.to_owned(), registry::tenant_not_found(h)));
                }
                h.to_owned()
            }
            (None, Some(h)) if h != p.tenant => {
                let e = ApiError::denied(format!("only admin keys choose a tenant with {TENANT_HEADER}"));
                return Err((p.tenant.clone(), e));
            }
            (None, _) => p.tenant.clone(),
        };
        if let Some(c) = &a.collection {
            if !p.may_use(c) {
                return Err((tenant, ApiError::denied(format!("this key may not use collection {c:?}"))));
            }
        }
        Ok(tenant)
    }

    /// Whether [`Self::authorize`] would succeed without blocking: no refusal
    /// to audit, no rate limit that could refuse, and the tenant's database
    /// (when the action needs it) already open. The HTTP layer then calls it
    /// on the async worker instead of the blocking pool.
    pub fn decides_without_blocking(&self, who: &Result<Principal, ApiError>, a: &Access) -> bool {
        let Ok(p) = who else { return false };
        let Ok(tenant) = self.resolve(p, a) else { return false };
        let unlimited = p.role == Role::Admin
            || (p.requests_per_second.is_none()
                && self.registry.tenant(&tenant).is_none_or(|t| t.quotas.requests_per_second.is_none()));
        let needs_db = matches!(a.action, Action::Read | Action::Write | Action::Manage);
        unlimited && (!needs_db || self.pool.is_open(&tenant))
    }

    fn record_failure(&self, p: Option<&Principal>, tenant: Option<&str>, a: &Access, outcome: &str, e: &ApiError) {
        self.write_audit(AuditEntry {
            seq: 0,
            time: String::new(),
            ts_ms: 0,
            key_id: p.map(|p| p.key_id.clone()),
            tenant: tenant.map(str::to_owned),
            action: a.op.to_owned(),
            resource: a.resource.clone(),
            outcome: outcome.to_owned(),
            code: Some(e.kind.code().to_owned()),
            client: a.client.clone(),
        });
    }

    fn write_audit(&self, mut e: AuditEntry) {
        e.ts_ms = clock::now_ms();
        e.time = clock::format(e.ts_ms / 1000);
        if let Err(err) = self.audit.append(e) {
            tracing::error!(error = err.message, "cannot write the audit log");
        }
    }

    /// Audit what the server did on its own (a scheduled backup): no key, the
    /// tenant it concerns, and the error's message on failure.
    pub fn audit_system(&self, tenant: &str, action: &str, resource: &str, result: Result<(), String>) {
        self.write_audit(AuditEntry {
            seq: 0,
            time: String::new(),
            ts_ms: 0,
            key_id: None,
            tenant: Some(tenant.to_owned()),
            action: action.to_owned(),
            resource: resource.to_owned(),
            outcome: if result.is_ok() { "ok" } else { "error" }.to_owned(),
            code: result.err(),
            client: None,
        });
    }

    /// A tenant's usage (opens its database).
    pub fn usage(&self, tenant: &str) -> Result<Usage, ApiError> {
        let db = self.pool.get(tenant, || self.exists(tenant))?;
        Ok(usage_of(&db))
    }

    /// Create a tenant (its folder starts empty).
    pub fn create_tenant(&self, name: &str, quotas: Quotas) -> Result<registry::Tenant, ApiError> {
        if self.auth_off() {
            return Err(ApiError::denied(
                "tenants need authentication: set NAKSHA_API_KEY (or server.api_key) so that tenants' keys mean something",
            ));
        }
        registry::validate_tenant_name(name)?;
        let dir = self.pool.tenant_dir(name);
        if self.registry.tenant(name).is_none() && dir.exists() {
            fs_err::remove_dir_all(&dir).map_err(ApiError::internal)?;
        }
        self.registry.create_tenant(name, quotas)
    }

    /// A tenant's quotas and creation time (none for the built-in default
    /// tenant), usage and counters; 404 for no such tenant.
    pub fn details(&self, name: &str) -> Result<(Quotas, Option<i64>, Usage, limits::Counters), ApiError> {
        let (quotas, created_at) = match self.registry.tenant(name) {
            Some(t) => (t.quotas, Some(t.created_at)),
            None if name == DEFAULT_TENANT => (Quotas::default(), None),
            None => return Err(registry::tenant_not_found(name)),
        };
        Ok((quotas, created_at, self.usage(name)?, self.limits.counters(name)))
    }

    /// A tenant's keys; 404 for no such tenant.
    pub fn keys(&self, tenant: &str) -> Result<Vec<registry::Key>, ApiError> {
        if !self.exists(tenant) {
            return Err(registry::tenant_not_found(tenant));
        }
        Ok(self.registry.keys(tenant))
    }

    /// A context for work done on a principal's behalf after its request
    /// (ingestion jobs): the tenant's database and quotas, no request rate
    /// limit (a job paces itself by its batches). The tenant must still exist.
    pub fn background(self: &Arc<Self>, p: Principal, tenant: &str, op: &'static str) -> Result<Ctx, ApiError> {
        if !self.exists(tenant) {
            return Err(registry::tenant_not_found(tenant));
        }
        let quotas = self.registry.tenant(tenant).map(|t| t.quotas).unwrap_or_default();
        let db = self.pool.get(tenant, || self.exists(tenant))?;
        Ok(Ctx {
            tenancy: self.clone(),
            principal: p,
            tenant: tenant.to_owned(),
            quotas,
            db: Some(db),
            op,
            action: Action::Write,
            resource: format!("jobs/{op}"),
            client: None,
        })
    }

    /// Delete a tenant: its keys stop working at once, then its collections go.
    /// The built-in default tenant cannot be deleted.
    pub fn delete_tenant(&self, name: &str) -> Result<bool, ApiError> {
        if name == DEFAULT_TENANT {
            return Err(ApiError::invalid("the built-in default tenant cannot be deleted"));
        }
        if !self.registry.delete_tenant(name)? {
            return Ok(false);
        }
        self.pool.remove(name, Duration::from_secs(30))?;
        self.limits.forget(name);
        self.gates.lock().remove(name);
        Ok(true)
    }

    fn gate(&self, tenant: &str) -> Arc<parking_lot::Mutex<()>> {
        self.gates.lock().entry(tenant.to_owned()).or_default().clone()
    }
}

/// Collections, points and disk bytes of a database.
pub fn usage_of(db: &Database) -> Usage {
    let mut u = Usage::default();
    for (_, c) in db.collections() {
        let i = c.info();
        u.collections += 1;
        u.points += i.points as u64;
        u.disk_bytes += i.disk_bytes;
    }
    u
}

/// An authorised request: its principal, tenant and (for data actions) the
/// tenant's database, with the quota checks writes go through.
#[derive(Debug)]
pub struct Ctx {
    tenancy: Arc<Tenancy>,
    /// Who.
    pub principal: Principal,
    /// The tenant addressed.
    pub tenant: String,
    quotas: Quotas,
    db: Option<Arc<Database>>,
    op: &'static str,
    action: Action,
    resource: String,
    client: Option<String>,
}

impl Ctx {
    /// The tenant's database.
    pub fn db(&self) -> Result<Arc<Database>, ApiError> {
        self.db.clone().ok_or_else(|| ApiError::internal(format!("{}: no database for this action", self.op)))
    }

    /// The shared state.
    pub fn tenancy(&self) -> &Arc<Tenancy> {
        &self.tenancy
    }

    /// A collection of the tenant (403 outside the key's scope, before any lookup).
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>, ApiError> {
        if !self.principal.may_use(name) {
            return Err(ApiError::denied(format!("this key may not use collection {name:?}")));
        }
        Ok(self.db()?.collection(name)?)
    }

    /// Whether the key sees this collection in lists.
    pub fn visible(&self, name: &str) -> bool {
        self.principal.may_use(name)
    }

    fn quota_error(&self, what: &str) -> ApiError {
        self.tenancy.limits.count(&self.tenant, |c| c.quota_exceeded += 1);
        ApiError::new(Kind::QuotaExceeded, format!("tenant {:?}: {what}", self.tenant))
    }

    fn check_disk(&self, usage: &Usage) -> Result<(), ApiError> {
        match self.quotas.max_disk_bytes {
            Some(max) if usage.disk_bytes >= max => {
                Err(self.quota_error(&format!("max_disk_bytes ({max}) is reached: {} bytes in use", usage.disk_bytes)))
            }
            _ => Ok(()),
        }
    }

    /// Create a collection within `max_collections` and `max_disk_bytes`.
    pub fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<(Arc<Collection>, bool), ApiError> {
        if !self.principal.may_use(name) {
            return Err(ApiError::denied(format!("this key may not use collection {name:?}")));
        }
        let db = self.db()?;
        let gate = self.tenancy.gate(&self.tenant);
        let _held = gate.lock();
        let existed = db.collection(name).is_ok();
        if !existed {
            let usage = usage_of(&db);
            if let Some(max) = self.quotas.max_collections {
                if usage.collections >= max {
                    return Err(self.quota_error(&format!(
                        "max_collections ({max}) is reached: it has {} collections",
                        usage.collections
                    )));
                }
            }
            self.check_disk(&usage)?;
        }
        Ok((db.create_collection(name, config)?, !existed))
    }

    /// Admit a write that adds `added()` points (computed only when a size
    /// quota is set) within `max_points` and `max_disk_bytes`. Hold the
    /// returned guard until the write is durable: writes of one tenant with
    /// such quotas run one at a time, so racing writers cannot overshoot.
    /// Nothing is written when a quota refuses.
    pub fn admit(&self, added: impl FnOnce() -> Result<u64, ApiError>) -> Result<Admission, ApiError> {
        if self.quotas.max_points.is_none() && self.quotas.max_disk_bytes.is_none() {
            return Ok(Admission(None));
        }
        let held = self.tenancy.gate(&self.tenant).lock_arc();
        let usage = usage_of(&*self.db()?);
        self.check_disk(&usage)?;
        if let Some(max) = self.quotas.max_points {
            let n = added()?;
            if usage.points + n > max {
                return Err(self.quota_error(&format!(
                    "max_points ({max}) would be exceeded: it has {} points and this write adds {n}",
                    usage.points
                )));
            }
        }
        Ok(Admission(Some(held)))
    }

    /// Admit a restore of a new collection with `points` points from an
    /// archive of `bytes` bytes within `max_collections`, `max_points` and
    /// `max_disk_bytes`; hold the guard until the restore is done.
    pub fn admit_restore(&self, points: u64, bytes: u64) -> Result<Admission, ApiError> {
        let q = &self.quotas;
        if q.max_collections.is_none() && q.max_points.is_none() && q.max_disk_bytes.is_none() {
            return Ok(Admission(None));
        }
        let held = self.tenancy.gate(&self.tenant).lock_arc();
        let usage = usage_of(&*self.db()?);
        if let Some(max) = q.max_collections {
            if usage.collections >= max {
                return Err(self.quota_error(&format!(
                    "max_collections ({max}) is reached: it has {} collections",
                    usage.collections
                )));
            }
        }
        if let Some(max) = q.max_points {
            if usage.points + points > max {
                return Err(self.quota_error(&format!(
                    "max_points ({max}) would be exceeded: it has {} points and the snapshot holds {points}",
                    usage.points
                )));
            }
        }
        if let Some(max) = q.max_disk_bytes {
            if usage.disk_bytes + bytes > max {
                return Err(self.quota_error(&format!(
                    "max_disk_bytes ({max}) would be exceeded: {} bytes in use and the snapshot holds {bytes}",
                    usage.disk_bytes
                )));
            }
        }
        Ok(Admission(Some(held)))
    }

    /// Charge embedding tokens (the model's tokenizer counts them) against
    /// `embed_tokens_per_minute`; refused requests embed nothing.
    pub fn charge_embed(&self, tokens: u64) -> Result<(), ApiError> {
        if let Some(per_minute) = self.quotas.embed_tokens_per_minute {
            if self.principal.role != Role::Admin {
                if let Err(e) = self.tenancy.limits.embed_tokens(&self.tenant, per_minute, tokens) {
                    self.tenancy.limits.count(&self.tenant, |c| {
                        if e.kind == Kind::RateLimited {
                            c.rate_limited += 1;
                        } else {
                            c.quota_exceeded += 1;
                        }
                    });
                    return Err(e);
                }
            }
        }
        self.tenancy.limits.count(&self.tenant, |c| c.embed_tokens += tokens);
        Ok(())
    }

    /// Whether [`Self::finish`] writes an audit entry: for audited actions,
    /// when authentication is on (with it off there is no identity to record,
    /// and single-user writes stay as fast as before tenancy).
    pub fn audited(&self) -> bool {
        self.action.audited() && !self.tenancy.auth_off()
    }

    /// Record the outcome of an audited action (`Err`: the API code).
    pub fn finish(&self, result: Result<(), Kind>) {
        if !self.audited() {
            return;
        }
        self.tenancy.write_audit(AuditEntry {
            seq: 0,
            time: String::new(),
            ts_ms: 0,
            key_id: Some(self.principal.key_id.clone()),
            tenant: Some(self.tenant.clone()),
            action: self.op.to_owned(),
            resource: self.resource.clone(),
            outcome: if result.is_ok() { "ok" } else { "error" }.to_owned(),
            code: result.err().map(|k| k.code().to_owned()),
            client: self.client.clone(),
        });
    }
}

/// A write admitted by [`Ctx::admit`]; other quota-checked writes of the tenant wait until it drops.
pub struct Admission(#[allow(dead_code)] Option<parking_lot::ArcMutexGuard<parking_lot::RawMutex, ()>>);

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Admission").field(&self.0.is_some()).finish()
    }
}

/// Points an upsert of `ids` adds to `c` (ids new to it, each once).
pub fn new_points(c: &Collection, ids: impl IntoIterator<Item = PointId>) -> u64 {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter().filter(|id| !c.contains(id) && seen.insert(id.clone())).count() as u64
}
