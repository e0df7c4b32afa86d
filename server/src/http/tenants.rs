//! Tenants, their keys and the audit log: `/v1/tenants[/{tenant}[/keys[/{id}]]]`, `/v1/audit`.
//! Who may call what is decided before these run ([`crate::tenancy::Tenancy::authorize`]);
//! the tenant in the path is the one the request was authorised for.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{blocking, json_response, parse_json, AppState};
use crate::error::{ApiError, ErrorBody};
use crate::tenancy::audit::{AuditEntry, AuditQuery};
use crate::tenancy::limits::Counters;
use crate::tenancy::registry::{self, Key, Tenant};
use crate::tenancy::{clock, Ctx, Quotas, Role, Usage};

/// A new tenant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "acme", "quotas": {"max_collections": 10, "max_points": 1000000, "max_disk_bytes": null,
    "requests_per_second": 100, "embed_tokens_per_minute": 200000}}))]
pub struct TenantBody {
    /// 1-64 of `[A-Za-z0-9_-]`, not `default`.
    pub name: String,
    /// Limits (absent or null: unlimited).
    #[serde(default)]
    pub quotas: Quotas,
}

/// Changed quotas: the fields given replace the current ones (null: unlimited).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"quotas": {"requests_per_second": 50}}))]
pub struct TenantPatch {
    /// Quota fields to change.
    #[schema(value_type = Quotas)]
    pub quotas: serde_json::Map<String, Value>,
}

/// A tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantOut {
    /// Name.
    pub name: String,
    /// Limits.
    pub quotas: Quotas,
    /// RFC 3339.
    pub created_at: String,
}

/// A tenant with its usage.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantDetails {
    /// Name.
    pub name: String,
    /// Limits.
    pub quotas: Quotas,
    /// RFC 3339 (absent for the built-in default tenant).
    pub created_at: Option<String>,
    /// Collections, points and bytes now.
    pub usage: Usage,
    /// Requests, refusals and embedded tokens since the server started.
    pub counters: Counters,
}

/// All tenants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantList {
    /// By name (the built-in `default` tenant is not listed).
    pub tenants: Vec<TenantOut>,
}

/// A new key.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "writer", "collections": ["docs"], "expires_at": null}))]
pub struct KeyBody {
    /// `admin` (admins only), `tenant_admin`, `writer` or `reader`.
    pub role: Role,
    /// Collections it may use (absent or null: all of the tenant's).
    #[serde(default)]
    pub collections: Option<Vec<String>>,
    /// RFC 3339 time or seconds since the epoch after which it stops working (null: never).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Value>,
    /// Its own request rate limit (requests per second), besides the tenant's.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
}

/// A key as listed (never the secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyOut {
    /// Id.
    pub id: String,
    /// `nk_{id}`: the start of the key text.
    pub prefix: String,
    /// Tenant.
    pub tenant: String,
    /// Role.
    pub role: Role,
    /// Collections it may use (null: all).
    pub collections: Option<Vec<String>>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 of the last successful use (to the minute), if any.
    pub last_used: Option<String>,
    /// RFC 3339, if it expires.
    pub expires_at: Option<String>,
    /// Its own request rate limit.
    pub requests_per_second: Option<f64>,
}

/// A key just made: the only time its secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyCreated {
    /// The key text: `Authorization: Bearer <key>`. Store it now; it cannot be shown again.
    pub key: String,
    /// The key's details.
    #[serde(flatten)]
    pub info: KeyOut,
}

/// A tenant's keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    /// Oldest first.
    pub keys: Vec<KeyOut>,
}

/// A revocation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// Always true on success.
    pub revoked: bool,
}

/// Audit filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this tenant.
    tenant: Option<String>,
    /// Only this action (`points.upsert`, `keys.create`, `auth`, ...).
    action: Option<String>,
    /// Only entries at or after this RFC 3339 time (or seconds since the epoch).
    since: Option<String>,
    /// The previous page's `next`.
    after: Option<u64>,
    /// Page size, 1 to 1,000 (default 100).
    limit: Option<usize>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Oldest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page; null at the end.
    pub next: Option<u64>,
}

fn tenant_out(t: Tenant) -> TenantOut {
    TenantOut { name: t.name, quotas: t.quotas, created_at: clock::format(t.created_at) }
}

/// A key as the API shows it.
pub fn key_out(k: Key) -> KeyOut {
    KeyOut {
        prefix: k.prefix(),
        id: k.id,
        tenant: k.tenant,
        role: k.role,
        collections: k.collections,
        created_at: clock::format(k.created_at),
        last_used: k.last_used.map(clock::format),
        expires_at: k.expires_at.map(clock::format),
        requests_per_second: k.requests_per_second,
    }
}

/// Create a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", operation_id = "create_tenant", request_body = TenantBody,
    responses((status = 201, body = TenantOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let b: TenantBody = parse_json(body, state.body_limit)?;
    blocking(move || {
        let t = ctx.tenancy().create_tenant(&b.name, b.quotas)?;
        Ok(json_response(StatusCode::CREATED, &tenant_out(t)))
    })
    .await
}

/// List tenants.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", operation_id = "list_tenants",
    responses((status = 200, body = TenantList), (status = 403, body = ErrorBody)))]
pub async fn list(Extension(ctx): Extension<Arc<Ctx>>) -> Result<Response, ApiError> {
    let tenants = ctx.tenancy().registry.tenants().into_iter().map(tenant_out).collect();
    Ok(json_response(StatusCode::OK, &TenantList { tenants }))
}

/// A tenant with its usage (its own tenant for a `tenant_admin` key).
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants", operation_id = "get_tenant", params(("tenant" = String, Path)),
    responses((status = 200, body = TenantDetails), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn info(Extension(ctx): Extension<Arc<Ctx>>, Path(tenant): Path<String>) -> Result<Response, ApiError> {
    blocking(move || {
        let (quotas, created_at, usage, counters) = ctx.tenancy().details(&tenant)?;
        let created_at = created_at.map(clock::format);
        Ok(json_response(StatusCode::OK, &TenantDetails { name: tenant, quotas, created_at, usage, counters }))
    })
    .await
}

/// Change a tenant's quotas.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants", operation_id = "update_tenant", params(("tenant" = String, Path)),
    request_body = TenantPatch,
    responses((status = 200, body = TenantOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(tenant): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let patch: TenantPatch = parse_json(body, state.body_limit)?;
    blocking(move || {
        let t = ctx.tenancy();
        let current = t.registry.tenant(&tenant).ok_or_else(|| registry::tenant_not_found(&tenant))?;
        let quotas = patch_quotas(&current.quotas, patch.quotas)?;
        Ok(json_response(StatusCode::OK, &tenant_out(t.registry.update_tenant(&tenant, quotas)?)))
    })
    .await
}

/// Apply the fields of a quota patch.
pub fn patch_quotas(current: &Quotas, patch: serde_json::Map<String, Value>) -> Result<Quotas, ApiError> {
    let mut merged = match serde_json::to_value(current) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    merged.extend(patch);
    serde_json::from_value(Value::Object(merged)).map_err(|e| ApiError::invalid(format!("quotas: {e}")))
}

/// Delete a tenant with its collections and keys.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenants", operation_id = "delete_tenant", params(("tenant" = String, Path)),
    responses((status = 200, body = super::collections::Deleted), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    match crate::jobs::delete_tenant(&state, ctx, tenant.clone()).await? {
        true => Ok(json_response(StatusCode::OK, &super::collections::Deleted { deleted: true })),
        false => Err(registry::tenant_not_found(&tenant)),
    }
}

/// Check a key request against its maker and make the stored key.
pub fn new_key(ctx: &Ctx, tenant: &str, b: KeyBody) -> Result<Key, ApiError> {
    if ctx.tenancy().auth_off() {
        return Err(ApiError::denied(
            "keys need authentication: set NAKSHA_API_KEY (or server.api_key) first; without it every request is an admin",
        ));
    }
    let maker = &ctx.principal;
    if b.role > maker.role {
        return Err(ApiError::denied(format!("a {} key cannot make {} keys", maker.role.as_str(), b.role.as_str())));
    }
    if let Some(names) = &b.collections {
        if names.is_empty() {
            return Err(ApiError::invalid("collections: give at least one name, or null for all"));
        }
        for n in names {
            naksha_query::database::validate_name(n)?;
        }
    }
    if let Some(mine) = &maker.collections {
        let within = b.collections.as_ref().is_some_and(|c| c.iter().all(|n| mine.contains(n)));
        if !within {
            return Err(ApiError::denied("a key limited to some collections can only make keys limited to those"));
        }
    }
    let expires_at = match b.expires_at {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(clock::parse(&s).map_err(|e| ApiError::invalid(format!("expires_at: {e}")))?),
        Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(|| ApiError::invalid("expires_at: not an integer"))?),
        Some(other) => return Err(ApiError::invalid(format!("expires_at: expected a time, not {other}"))),
    };
    if expires_at.is_some_and(|e| e <= clock::now()) {
        return Err(ApiError::invalid("expires_at is in the past"));
    }
    if b.requests_per_second.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(ApiError::invalid("requests_per_second must be a positive number or null"));
    }
    Ok(Key {
        collections: b.collections,
        expires_at,
        requests_per_second: b.requests_per_second,
        ..Key::new(tenant, b.role)
    })
}

/// Make a key for a tenant; the reply is the only place its secret appears.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/keys", tag = "tenants", operation_id = "create_key", params(("tenant" = String, Path)),
    request_body = KeyBody,
    responses((status = 201, body = KeyCreated), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<Arc<Ctx>>,
    Path(tenant): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let b: KeyBody = parse_json(body, state.body_limit)?;
    blocking(move || {
        let key = new_key(&ctx, &tenant, b)?;
        let (k, text) = ctx.tenancy().registry.create_key(key)?;
        Ok(json_response(StatusCode::CREATED, &KeyCreated { key: text, info: key_out(k) }))
    })
    .await
}

/// A tenant's keys (ids and prefixes, never secrets).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/keys", tag = "tenants", operation_id = "list_keys", params(("tenant" = String, Path)),
    responses((status = 200, body = KeyList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_keys(Extension(ctx): Extension<Arc<Ctx>>, Path(tenant): Path<String>) -> Result<Response, ApiError> {
    let keys = ctx.tenancy().keys(&tenant)?.into_iter().map(key_out).collect();
    Ok(json_response(StatusCode::OK, &KeyList { keys }))
}

/// Revoke a key: it stops working at once, also after restarts.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/keys/{id}", tag = "tenants", operation_id = "revoke_key",
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Revoked), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    Extension(ctx): Extension<Arc<Ctx>>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    blocking(move || match ctx.tenancy().registry.revoke(&tenant, &id)? {
        true => Ok(json_response(StatusCode::OK, &Revoked { revoked: true })),
        false => Err(ApiError::not_found(format!("key {id:?} not found in tenant {tenant:?}"))),
    })
    .await
}

/// Read the audit log (admins).
#[utoipa::path(get, path = "/v1/audit", tag = "tenants", operation_id = "list_audit", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit(Extension(ctx): Extension<Arc<Ctx>>, Query(p): Query<AuditParams>) -> Result<Response, ApiError> {
    let q = audit_query(p.tenant, p.action, p.since, p.after, p.limit)?;
    blocking(move || {
        let (entries, next) = ctx.tenancy().audit.read(&q)?;
        Ok(json_response(StatusCode::OK, &AuditPage { entries, next }))
    })
    .await
}

/// Default audit page size.
pub const DEFAULT_AUDIT_LIMIT: usize = 100;
/// Largest audit page.
pub const MAX_AUDIT_LIMIT: usize = 1000;

/// Audit filters from either front end.
pub fn audit_query(
    tenant: Option<String>,
    action: Option<String>,
    since: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
) -> Result<AuditQuery, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
    if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be 1 to {MAX_AUDIT_LIMIT}")));
    }
    let since = since.map(|s| clock::parse(&s)).transpose().map_err(|e| ApiError::invalid(format!("since: {e}")))?;
    Ok(AuditQuery { tenant, action, since, after, limit })
}
