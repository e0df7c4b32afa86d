//! What every request passes before a handler sees it, and what every error
//! reply looks like after.
//!
//! - Host header checked against the allowed names (DNS rebinding: a page on
//!   `evil.example` whose name resolves to 127.0.0.1 would otherwise reach a
//!   loopback server with the browser's help).
//! - `Origin`: browsers send it on cross-origin requests. With no allowed
//!   origins (the default) such requests are refused; allowed ones get CORS
//!   headers and preflight answers.
//! - Bodies must be `application/json` or `application/x-ndjson` (415): a
//!   `text/plain` POST is a "simple" request that browsers send cross-site
//!   without a preflight.
//! - A declared `Content-Length` over the limit is refused before the body is
//!   read (413, connection closed); URIs over [`MAX_URI_LEN`] get 414.
//! - Error replies without a JSON body (axum's 405, path and body rejections)
//!   are rewritten to `{"error": {"code", "message"}}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Kind};
use crate::state::AppState;
pub use crate::state::Policy;

/// Longest request URI (path and query) accepted.
pub const MAX_URI_LEN: usize = 8 << 10;
/// The host name of a Host header value: no port, no IPv6 brackets, lower case.
fn host_name(value: &str) -> String {
    let v = value.trim();
    let name = if let Some(rest) = v.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        v.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(v, |(h, _)| h)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn is_json_or_ndjson(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || essence == "application/x-ndjson"
}

fn cors_headers(res: &mut Response, origin: &HeaderValue) {
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
}

/// The checks above, before routing.
pub async fn check(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let policy = &state.policy;
    if req.uri().path_and_query().map_or(0, |p| p.as_str().len()) > MAX_URI_LEN {
        return ApiError::new(Kind::UriTooLong, format!("request URI longer than {MAX_URI_LEN} bytes")).into_response();
    }
    if let Some(allowed) = &policy.allowed_hosts {
        let host = req.headers().get(header::HOST).map(|v| v.to_str().map(host_name));
        match host {
            None => {}
            Some(Ok(name)) if allowed.contains(&name) => {}
            Some(_) => return ApiError::new(
                Kind::PermissionDenied,
                "Host header not allowed: this server answers to its own names only (settings: server.allowed_hosts)",
            )
            .into_response(),
        }
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    if let Some(origin) = &origin {
        let allowed = origin.to_str().is_ok_and(|o| policy.cors_origins.iter().any(|a| a == o || a == "*"));
        if !allowed {
            return ApiError::new(
                Kind::PermissionDenied,
                "requests from a browser origin are refused: add the origin to server.cors_origins to allow it",
            )
            .into_response();
        }
        if req.method() == Method::OPTIONS {
            let mut res = StatusCode::NO_CONTENT.into_response();
            cors_headers(&mut res, origin);
            let h = res.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PUT, DELETE"));
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type, x-naksha-tenant"),
            );
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            return res;
        }
    }
    if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) && !is_archive_upload(&req) {
        let ct = req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or_default());
        if !ct.is_some_and(is_json_or_ndjson) {
            return ApiError::new(
                Kind::UnsupportedMediaType,
                format!(
                    "Content-Type {:?} is not accepted: send application/json (or application/x-ndjson for points)",
                    ct.unwrap_or("(none)")
                ),
            )
            .into_response();
        }
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > state.body_limit as u64) {
            let mut res = ApiError::too_large(state.body_limit).into_response();
            // The body is not read: the connection cannot carry another request.
            res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return res;
        }
    }
    let req = match policy.body_timeout {
        Some(t) => req.map(|body| Body::new(tower_http::timeout::TimeoutBody::new(t, body))),
        None => req,
    };
    let mut res = next.run(req).await;
    if let Some(origin) = &origin {
        cors_headers(&mut res, origin);
    }
    res
}

/// An archive uploaded for a restore: the one body that is neither JSON nor
/// bounded by the body limit (it is streamed to disk, not held in memory).
fn is_archive_upload(req: &Request) -> bool {
    req.method() == Method::POST
        && req.uri().path() == "/v1/snapshots/restore"
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("application/octet-stream"))
}

/// Error replies that are not already JSON (axum's own 405 and rejections)
/// become the API's error body, with the original text as the message.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let kind = match status {
        StatusCode::BAD_REQUEST => Kind::InvalidArgument,
        StatusCode::UNAUTHORIZED => Kind::Unauthenticated,
        StatusCode::FORBIDDEN => Kind::PermissionDenied,
        StatusCode::NOT_FOUND => Kind::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => Kind::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT => Kind::RequestTimeout,
        StatusCode::PAYLOAD_TOO_LARGE => Kind::PayloadTooLarge,
        StatusCode::URI_TOO_LONG => Kind::UriTooLong,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Kind::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => Kind::Unprocessable,
        StatusCode::SERVICE_UNAVAILABLE => Kind::Unavailable,
        s if s.is_client_error() => Kind::InvalidArgument,
        _ => Kind::Internal,
    };
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_owned();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_owned();
    }
    let mut out = ApiError::new(kind, message).into_response();
    *out.status_mut() = status;
    for name in [header::ALLOW, header::CONNECTION] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_taken_apart_like_browsers_send_them() {
        assert_eq!(host_name("localhost:6480"), "localhost");
        assert_eq!(host_name("LocalHost."), "localhost");
        assert_eq!(host_name("[::1]:6480"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("evil.example:6480"), "evil.example");
    }

    #[test]
    fn only_json_media_types_pass() {
        assert!(is_json_or_ndjson("application/json"));
        assert!(is_json_or_ndjson("Application/JSON; charset=utf-8"));
        assert!(is_json_or_ndjson("application/x-ndjson"));
        assert!(!is_json_or_ndjson("text/plain"));
        assert!(!is_json_or_ndjson("application/x-www-form-urlencoded"));
        assert!(!is_json_or_ndjson("multipart/form-data; boundary=x"));
    }
}
