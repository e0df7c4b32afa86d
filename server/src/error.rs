//! The one place engine errors become HTTP statuses and API error bodies
//! (`{"error": {"code", "message"}}`, see API.md). Matches are exhaustive: a new
//! engine error variant does not compile until it has a status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use naksha_query::Error as QueryError;

/// An error as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// 400 `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "invalid_argument", message: message.into() }
    }
    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: "not_found", message: message.into() }
    }
    /// 401 `unauthenticated`.
    pub fn unauthenticated() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: "missing or wrong API key: send Authorization: Bearer <key>".into(),
        }
    }
    /// 413 `payload_too_large`.
    pub fn too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("request body exceeds the limit of {limit} bytes"),
        }
    }
    /// 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, code: "unavailable", message: message.into() }
    }
    /// 500 `internal`: the details go to the log, the client gets a generic message.
    pub fn internal(details: impl std::fmt::Display) -> Self {
        tracing::error!(error = %details, "internal error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; see the server log".into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let unprocessable =
            |m: String| Self { status: StatusCode::UNPROCESSABLE_ENTITY, code: "unprocessable", message: m };
        match e {
            QueryError::Index(ie) => match ie {
                naksha_index::Error::WrongDimension { .. }
                | naksha_index::Error::NonFinite { .. }
                | naksha_index::Error::ZeroVector { .. } => unprocessable(ie.to_string()),
                naksha_index::Error::Storage(_) | naksha_index::Error::CorruptSegment { .. } => Self::internal(ie),
            },
            QueryError::Storage(se) => Self::internal(se),
            QueryError::InvalidArgument(m) => Self::invalid(m),
            QueryError::CollectionNotFound(name) => Self::not_found(format!("collection {name:?} not found")),
            QueryError::CollectionExists(name) => Self {
                status: StatusCode::CONFLICT,
                code: "already_exists",
                message: format!("collection {name:?} already exists with a different configuration"),
            },
            QueryError::Locked(path) => Self::unavailable(format!("data directory {} is locked", path.display())),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, [("content-type", "application/json")], body.to_string()).into_response()
    }
}
