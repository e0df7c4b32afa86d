//! What each route does, for authorization and the audit log: one table from
//! (method, route) to an operation name and a [`Action`]. A route missing here
//! is refused for everyone (403), so a new route cannot be reached before it
//! has a rule; the isolation tests walk every route of the OpenAPI document.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{Path, Request};
use axum::http::{Method, StatusCode};
use axum::RequestExt;

use crate::error::{ApiError, Kind};
use crate::tenancy::{Access, Action, TENANT_HEADER};

/// The client's address, set by the accept loop on every request.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// The operation name and action of a route; `None`: no rule (refused).
pub fn rule(method: &Method, route: &str) -> Option<(&'static str, Action)> {
    use Action::*;
    let m = method.as_str();
    Some(match (m, route) {
        ("GET", "/v1/collections") => ("collections.list", Read),
        ("GET", "/v1/collections/{name}") => ("collections.get", Read),
        ("PUT", "/v1/collections/{name}") => ("collections.create", Manage),
        ("DELETE", "/v1/collections/{name}") => ("collections.delete", Manage),
        ("POST", "/v1/collections/{name}/points") => ("points.upsert", Write),
        ("POST", "/v1/collections/{name}/points/delete") => ("points.delete", Write),
        ("GET", "/v1/collections/{name}/points/{id}") => ("points.get", Read),
        ("POST", "/v1/collections/{name}/query") => ("query", Read),
        ("POST", "/v1/collections/{name}/rag") => ("rag", Read),
        ("POST", "/v1/collections/{name}/documents") => ("documents.upsert", Write),
        ("POST", "/v1/collections/{name}/documents/delete") => ("documents.delete", Write),
        ("GET", "/v1/models") => ("models.list", Read),
        ("POST", "/v1/embed") => ("embed", Read),
        ("GET", "/v1/tenants") => ("tenants.list", Admin),
        ("POST", "/v1/tenants") => ("tenants.create", Admin),
        ("GET", "/v1/tenants/{tenant}") => ("tenants.get", TenantInfo),
        ("PATCH", "/v1/tenants/{tenant}") => ("tenants.update", Admin),
        ("DELETE", "/v1/tenants/{tenant}") => ("tenants.delete", Admin),
        ("GET", "/v1/tenants/{tenant}/keys") => ("keys.list", Keys),
        ("POST", "/v1/tenants/{tenant}/keys") => ("keys.create", Keys),
        ("DELETE", "/v1/tenants/{tenant}/keys/{id}") => ("keys.revoke", Keys),
        ("GET", "/v1/audit") => ("audit.list", Admin),
        ("POST", "/v1/jobs") => ("jobs.create", Write),
        ("GET", "/v1/jobs") => ("jobs.list", Read),
        ("GET", "/v1/jobs/{id}") => ("jobs.get", Read),
        ("DELETE", "/v1/jobs/{id}") => ("jobs.cancel", Write),
        ("POST", "/v1/collections/{name}/snapshots") => ("snapshots.create", Manage),
        ("GET", "/v1/collections/{name}/snapshots") => ("snapshots.list", Manage),
        ("GET", "/v1/collections/{name}/snapshots/{id}") => ("snapshots.download", Manage),
        ("DELETE", "/v1/collections/{name}/snapshots/{id}") => ("snapshots.delete", Manage),
        ("POST", "/v1/collections/{name}/snapshots/{id}/restore") => ("snapshots.restore", Manage),
        ("POST", "/v1/snapshots") => ("snapshots.create_all", Manage),
        ("GET", "/v1/snapshots") => ("snapshots.list_all", Manage),
        ("POST", "/v1/snapshots/restore") => ("snapshots.restore_archive", Manage),
        ("GET", "/v1/snapshots/s3") => ("snapshots.list_s3", Manage),
        ("GET", "/metrics") => ("metrics", Admin),
        ("GET", "/openapi.json") => ("openapi", Describe),
        _ => return None,
    })
}

/// The [`Access`] a request asks for (its route must have a [`rule`]).
pub async fn describe(req: &mut Request, route: &str) -> Result<Access, ApiError> {
    let Some((op, action)) = rule(req.method(), route) else {
        // A method the route has no rule for is refused before any handler runs.
        let known = ["GET", "PUT", "POST", "PATCH", "DELETE"]
            .iter()
            .any(|m| m.parse::<Method>().is_ok_and(|m| rule(&m, route).is_some()));
        return Err(match known {
            true => ApiError::new(Kind::MethodNotAllowed, format!("{} is not allowed on {route}", req.method())),
            false => ApiError::denied(format!("no access rule for {} {route}", req.method())),
        });
    };
    let params: HashMap<String, String> = match req.extract_parts::<Path<HashMap<String, String>>>().await {
        Ok(Path(p)) => p,
        Err(_) if !route.contains('{') => HashMap::new(),
        Err(e) => return Err(ApiError::invalid(format!("path: {e}"))),
    };
    let tenant_header = match req.headers().get(TENANT_HEADER) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| ApiError::invalid(format!("{TENANT_HEADER} is not text")))?.to_owned()),
    };
    let collection = route.starts_with("/v1/collections/").then(|| params.get("name").cloned()).flatten();
    let tenant_path = params.get("tenant").cloned();
    let resource = req.uri().path().trim_start_matches("/v1/").trim_start_matches('/').to_owned();
    let client = req.extensions().get::<ClientAddr>().map(|c| c.0.to_string());
    Ok(Access { op, action, collection, tenant_path, tenant_header, resource, client })
}

/// The API kind behind an error status (for the audit log).
pub fn kind_of(status: StatusCode) -> Kind {
    Kind::ALL.into_iter().find(|k| k.status() == status).unwrap_or(Kind::Internal)
}
