//! Conversions for the tenant, key and audit messages.

use super::pb;
use crate::error::ApiError;
use crate::tenancy::audit::AuditEntry;
use crate::tenancy::limits::Counters;
use crate::tenancy::registry::{Key, Tenant};
use crate::tenancy::{clock, Quotas, Role, Usage};

pub fn quotas_from_pb(q: Option<pb::Quotas>) -> Quotas {
    let q = q.unwrap_or_default();
    Quotas {
        max_collections: q.max_collections,
        max_points: q.max_points,
        max_disk_bytes: q.max_disk_bytes,
        requests_per_second: q.requests_per_second,
        embed_tokens_per_minute: q.embed_tokens_per_minute,
    }
}

pub fn quotas_to_pb(q: Quotas) -> pb::Quotas {
    pb::Quotas {
        max_collections: q.max_collections,
        max_points: q.max_points,
        max_disk_bytes: q.max_disk_bytes,
        requests_per_second: q.requests_per_second,
        embed_tokens_per_minute: q.embed_tokens_per_minute,
    }
}

pub fn tenant_to_pb(t: Tenant) -> pb::Tenant {
    pb::Tenant { name: t.name, quotas: Some(quotas_to_pb(t.quotas)), created_at: clock::format(t.created_at) }
}

pub fn usage_to_pb(u: Usage, c: Counters) -> pb::TenantUsage {
    pb::TenantUsage {
        collections: u.collections,
        points: u.points,
        disk_bytes: u.disk_bytes,
        requests: c.requests,
        rate_limited: c.rate_limited,
        quota_exceeded: c.quota_exceeded,
        embed_tokens: c.embed_tokens,
    }
}

pub fn role_from_pb(v: i32) -> Result<Role, ApiError> {
    match pb::Role::try_from(v) {
        Ok(pb::Role::Reader) => Ok(Role::Reader),
        Ok(pb::Role::Writer) => Ok(Role::Writer),
        Ok(pb::Role::TenantAdmin) => Ok(Role::TenantAdmin),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Unspecified) => Err(ApiError::invalid("role is required")),
        Err(_) => Err(ApiError::invalid(format!("unknown role {v}"))),
    }
}

fn role_to_pb(r: Role) -> pb::Role {
    match r {
        Role::Reader => pb::Role::Reader,
        Role::Writer => pb::Role::Writer,
        Role::TenantAdmin => pb::Role::TenantAdmin,
        Role::Admin => pb::Role::Admin,
    }
}

pub fn key_to_pb(k: Key) -> pb::ApiKey {
    let out = crate::http::tenants::key_out(k);
    pb::ApiKey {
        id: out.id,
        prefix: out.prefix,
        tenant: out.tenant,
        role: role_to_pb(out.role) as i32,
        collections: out.collections.unwrap_or_default(),
        created_at: out.created_at,
        last_used: out.last_used,
        expires_at: out.expires_at,
        requests_per_second: out.requests_per_second,
    }
}

pub fn audit_to_pb(e: AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: e.seq,
        time: e.time,
        ts_ms: e.ts_ms,
        key_id: e.key_id,
        tenant: e.tenant,
        action: e.action,
        resource: e.resource,
        outcome: e.outcome,
        code: e.code,
        client: e.client,
    }
}
