//! The one place engine errors are classified. Each [`Kind`] then has exactly
//! one HTTP status and one gRPC code (exhaustive matches, no `_ =>`): a new
//! engine error variant does not compile until it has both. HTTP bodies follow
//! API.md: `{"error": {"code", "message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use naksha_query::{Error as QueryError, ErrorKind};

/// What went wrong, independent of protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The request is malformed.
    InvalidArgument,
    /// Missing or wrong API key.
    Unauthenticated,
    /// Refused by policy (a foreign Host or browser Origin).
    PermissionDenied,
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// The client sent its request too slowly.
    RequestTimeout,
    /// The request URI is too long.
    UriTooLong,
    /// The body is not JSON or NDJSON.
    UnsupportedMediaType,
    /// No such collection, point or route.
    NotFound,
    /// A collection exists with another configuration.
    AlreadyExists,
    /// The body exceeds the limit.
    PayloadTooLarge,
    /// Well-formed but unusable (wrong dimension, NaN, zero cosine vector).
    Unprocessable,
    /// A server-side failure; details are in the log.
    Internal,
    /// Not ready (recovering) or the data directory is locked.
    Unavailable,
    /// An upstream service the request needed (a RAG generator) failed.
    BadGateway,
    /// A tenant's or key's request or embedding-token rate is spent; retry after `Retry-After`.
    RateLimited,
    /// A tenant's size quota (collections, points, disk bytes) would be exceeded.
    QuotaExceeded,
    /// The resource's state does not allow this (cancelling a finished job).
    Conflict,
}

impl Kind {
    /// Every kind, for documentation.
    pub const ALL: [Kind; 17] = [
        Kind::InvalidArgument,
        Kind::Unauthenticated,
        Kind::PermissionDenied,
        Kind::MethodNotAllowed,
        Kind::RequestTimeout,
        Kind::UriTooLong,
        Kind::UnsupportedMediaType,
        Kind::NotFound,
        Kind::AlreadyExists,
        Kind::PayloadTooLarge,
        Kind::Unprocessable,
        Kind::Internal,
        Kind::Unavailable,
        Kind::BadGateway,
        Kind::RateLimited,
        Kind::QuotaExceeded,
        Kind::Conflict,
    ];

    /// The API's snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Kind::InvalidArgument => "invalid_argument",
            Kind::Unauthenticated => "unauthenticated",
            Kind::PermissionDenied => "permission_denied",
            Kind::MethodNotAllowed => "method_not_allowed",
            Kind::RequestTimeout => "request_timeout",
            Kind::UriTooLong => "uri_too_long",
            Kind::UnsupportedMediaType => "unsupported_media_type",
            Kind::NotFound => "not_found",
            Kind::AlreadyExists => "already_exists",
            Kind::PayloadTooLarge => "payload_too_large",
            Kind::Unprocessable => "unprocessable",
            Kind::Internal => "internal",
            Kind::Unavailable => "unavailable",
            Kind::BadGateway => "bad_gateway",
            Kind::RateLimited => "rate_limited",
            Kind::QuotaExceeded => "quota_exceeded",
            Kind::Conflict => "conflict",
        }
    }

    /// HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Kind::InvalidArgument => StatusCode::BAD_REQUEST,
            Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
            Kind::PermissionDenied => StatusCode::FORBIDDEN,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Kind::UriTooLong => StatusCode::URI_TOO_LONG,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::AlreadyExists => StatusCode::CONFLICT,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::BadGateway => StatusCode::BAD_GATEWAY,
            Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Kind::QuotaExceeded => StatusCode::FORBIDDEN,
            Kind::Conflict => StatusCode::CONFLICT,
        }
    }

    /// gRPC status code.
    pub fn grpc(self) -> tonic::Code {
        match self {
            Kind::InvalidArgument | Kind::Unprocessable => tonic::Code::InvalidArgument,
            Kind::Unauthenticated => tonic::Code::Unauthenticated,
            Kind::PermissionDenied => tonic::Code::PermissionDenied,
            Kind::MethodNotAllowed => tonic::Code::Unimplemented,
            Kind::RequestTimeout => tonic::Code::DeadlineExceeded,
            Kind::UriTooLong | Kind::UnsupportedMediaType => tonic::Code::InvalidArgument,
            Kind::NotFound => tonic::Code::NotFound,
            Kind::AlreadyExists => tonic::Code::AlreadyExists,
            Kind::PayloadTooLarge => tonic::Code::ResourceExhausted,
            Kind::Internal => tonic::Code::Internal,
            Kind::Unavailable => tonic::Code::Unavailable,
            Kind::BadGateway => tonic::Code::Unavailable,
            Kind::RateLimited | Kind::QuotaExceeded => tonic::Code::ResourceExhausted,
            Kind::Conflict => tonic::Code::FailedPrecondition,
        }
    }
}

/// An error as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    /// Classification.
    pub kind: Kind,
    /// Human-readable message.
    pub message: String,
    /// Seconds after which a retry can succeed (`Retry-After`; gRPC `RetryInfo`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), retry_after: None }
    }
    /// 403 `permission_denied`.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(Kind::PermissionDenied, message)
    }
    /// 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        Self { retry_after: Some(secs.max(1)), ..Self::new(Kind::RateLimited, message) }
    }
    /// 400 `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Kind::InvalidArgument, message)
    }
    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }
    /// 401 `unauthenticated`.
    pub fn unauthenticated() -> Self {
        Self::new(
            Kind::Unauthenticated,
            "missing, wrong, revoked or expired credential: send Authorization: Bearer <key or token>",
        )
    }
    /// 413 `payload_too_large`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(Kind::PayloadTooLarge, format!("request body exceeds the limit of {limit} bytes"))
    }
    /// 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Kind::Unavailable, message)
    }
    /// 500 `internal`: the details go to the log, the client gets a generic message.
    pub fn internal(details: impl std::fmt::Display) -> Self {
        tracing::error!(error = %details, "internal error");
        Self::new(Kind::Internal, "internal error; see the server log")
    }
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        api_error(e.kind(), e)
    }
}

/// The one match from engine kinds ([`ErrorKind`], which the engine crates
/// decide) to API kinds. Server-side failures keep their details in the log.
fn api_error(kind: ErrorKind, e: impl std::fmt::Display) -> ApiError {
    match kind {
        ErrorKind::InvalidArgument => ApiError::invalid(strip_prefix(e.to_string())),
        ErrorKind::Unprocessable => ApiError::new(Kind::Unprocessable, e.to_string()),
        ErrorKind::NotFound => ApiError::not_found(e.to_string()),
        ErrorKind::AlreadyExists => ApiError::new(Kind::AlreadyExists, e.to_string()),
        ErrorKind::NoSpace => {
            tracing::warn!(error = %e, "disk full");
            ApiError::unavailable(
                "no space left on the data directory's disk: the request changed nothing; writes resume when space returns",
            )
        }
        ErrorKind::ReadOnly => {
            tracing::error!(error = %e, "collection read-only");
            ApiError::unavailable(format!("{e}; the collection is read-only until the server restarts"))
        }
        ErrorKind::Unavailable => ApiError::unavailable(e.to_string()),
        ErrorKind::Upstream => ApiError::new(Kind::BadGateway, e.to_string()),
        ErrorKind::Cancelled => ApiError::unavailable(e.to_string()),
        ErrorKind::Internal => ApiError::internal(e),
    }
}

/// Engine messages for bad input start with `invalid argument: `; the API's
/// code already says so.
fn strip_prefix(message: String) -> String {
    match message.strip_prefix("invalid argument: ") {
        Some(rest) => rest.to_owned(),
        None => message,
    }
}

impl From<naksha_query::embed::Error> for ApiError {
    fn from(e: naksha_query::embed::Error) -> Self {
        QueryError::from(e).into()
    }
}

impl From<naksha_rag::Error> for ApiError {
    /// RAG errors carry the same kinds; engine errors inside keep their own mapping.
    fn from(e: naksha_rag::Error) -> Self {
        match e {
            naksha_rag::Error::Query(q) => q.into(),
            other => api_error(other.kind(), other),
        }
    }
}

/// Every error body: `{"error": {"code", "message"}}`.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `invalid_argument` (400), `unauthenticated` (401), `permission_denied` (403), `not_found` (404),
    /// `method_not_allowed` (405), `request_timeout` (408), `already_exists` (409), `payload_too_large` (413),
    /// `uri_too_long` (414), `unsupported_media_type` (415), `unprocessable` (422), `internal` (500),
    /// `bad_gateway` (502), `unavailable` (503), `rate_limited` (429, with `Retry-After`) or
    /// `quota_exceeded` (403).
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl From<ApiError> for ErrorBody {
    fn from(e: ApiError) -> Self {
        ErrorBody { error: ErrorDetail { code: e.kind.code().to_owned(), message: e.message } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = (self.kind.status(), self.kind);
        let retry_after = self.retry_after;
        let body = ErrorBody::from(self);
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut res = (status, [("content-type", "application/json")], text).into_response();
        // For the audit log, which records the code, not only the status.
        res.extensions_mut().insert(kind);
        if let Some(secs) = retry_after {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        res
    }
}

/// The gRPC status: the code matching the HTTP status, and in the
/// `google.rpc.Status` details an `ErrorInfo` whose reason is the API's code
/// (domain `naksha`), so gRPC clients see the same classification as HTTP ones.
impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        use tonic_types::{ErrorDetails, StatusExt};
        let mut details = ErrorDetails::with_error_info(e.kind.code(), ERROR_DOMAIN, std::collections::HashMap::new());
        if let Some(secs) = e.retry_after {
            details.set_retry_info(Some(std::time::Duration::from_secs(secs)));
        }
        tonic::Status::with_error_details(e.kind.grpc(), e.message, details)
    }
}

/// The `domain` of the `google.rpc.ErrorInfo` in gRPC error details.
pub const ERROR_DOMAIN: &str = "naksha";

#[cfg(test)]
mod tests {
    use naksha_query::embed::Error as EmbedError;
    use tonic_types::StatusExt;

    use super::*;

    /// Engine and RAG errors reach HTTP and gRPC through their kinds: the same
    /// code on both, internal details never shown.
    #[test]
    fn engine_errors_map_to_one_code_on_both_front_ends() {
        let cases: Vec<(ApiError, u16, &str, tonic::Code)> = vec![
            (QueryError::InvalidArgument("bad".into()).into(), 400, "invalid_argument", tonic::Code::InvalidArgument),
            (EmbedError::UnknownModel("m".into()).into(), 400, "invalid_argument", tonic::Code::InvalidArgument),
            (QueryError::CollectionNotFound("c".into()).into(), 404, "not_found", tonic::Code::NotFound),
            (QueryError::CollectionExists("c".into()).into(), 409, "already_exists", tonic::Code::AlreadyExists),
            (QueryError::Unavailable("full".into()).into(), 503, "unavailable", tonic::Code::Unavailable),
            (QueryError::Internal("a bug".into()).into(), 500, "internal", tonic::Code::Internal),
            (naksha_rag::Error::Generator("down".into()).into(), 502, "bad_gateway", tonic::Code::Unavailable),
            (
                naksha_rag::Error::InvalidArgument("q".into()).into(),
                400,
                "invalid_argument",
                tonic::Code::InvalidArgument,
            ),
            (
                naksha_rag::Error::Query(QueryError::CollectionNotFound("c".into())).into(),
                404,
                "not_found",
                tonic::Code::NotFound,
            ),
        ];
        for (e, status, code, grpc) in cases {
            assert_eq!((e.status().as_u16(), e.kind.code()), (status, code), "{}", e.message);
            assert!(!e.message.starts_with("invalid argument: "), "the code already says so: {}", e.message);
            if e.kind == Kind::Internal {
                assert!(!e.message.contains("a bug"), "internal details stay in the log: {}", e.message);
            }
            let s = tonic::Status::from(e);
            assert_eq!(s.code(), grpc);
            let info = s.get_details_error_info().expect("ErrorInfo in the status details");
            assert_eq!((info.reason.as_str(), info.domain.as_str()), (code, ERROR_DOMAIN));
        }
    }
}
