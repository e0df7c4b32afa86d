//! The one place engine errors are classified. Each [`Kind`] then has exactly
//! one HTTP status and one gRPC code (exhaustive matches, no `_ =>`): a new
//! engine error variant does not compile until it has both. HTTP bodies follow
//! API.md: `{"error": {"code", "message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use naksha_query::Error as QueryError;

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
}

impl Kind {
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
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
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
        Self::new(Kind::Unauthenticated, "missing or wrong API key: send Authorization: Bearer <key>")
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
        match e {
            QueryError::Index(ie) => match ie {
                naksha_index::Error::WrongDimension { .. }
                | naksha_index::Error::NonFinite { .. }
                | naksha_index::Error::ZeroVector { .. } => Self::new(Kind::Unprocessable, ie.to_string()),
                naksha_index::Error::InvalidQuery(m) => Self::invalid(m),
                naksha_index::Error::Storage(se) => se.into(),
                naksha_index::Error::CorruptSegment { .. } | naksha_index::Error::Text(_) => Self::internal(ie),
            },
            QueryError::Storage(se) => se.into(),
            QueryError::Unavailable(m) => Self::unavailable(m),
            QueryError::InvalidArgument(m) => Self::invalid(m),
            QueryError::CollectionNotFound(name) => Self::not_found(format!("collection {name:?} not found")),
            QueryError::CollectionExists(name) => Self::new(
                Kind::AlreadyExists,
                format!("collection {name:?} already exists with a different configuration"),
            ),
            QueryError::Locked(path) => Self::unavailable(format!("data directory {} is locked", path.display())),
            QueryError::Embed(ee) => ee.into(),
            QueryError::Generator(m) => Self::new(Kind::BadGateway, format!("generator: {m}")),
            QueryError::Cancelled => Self::new(Kind::Unavailable, "cancelled"),
        }
    }
}

impl From<naksha_storage::Error> for ApiError {
    fn from(e: naksha_storage::Error) -> Self {
        use naksha_storage::Error as E;
        if e.is_no_space() && !matches!(e, E::SyncFailed(_)) {
            tracing::warn!(error = %e, "disk full");
            return Self::unavailable(
                "no space left on the data directory's disk: the request changed nothing; writes resume when space returns",
            );
        }
        match e {
            E::SyncFailed(_) | E::WalPoisoned(_) => {
                tracing::error!(error = %e, "collection read-only");
                Self::unavailable(format!("{e}; the collection is read-only until the server restarts"))
            }
            E::Corrupt { .. } | E::UnsupportedVersion { .. } | E::Decode(_) | E::Io(_) | E::Json { .. } => {
                Self::internal(e)
            }
        }
    }
}

impl From<naksha_query::embed::Error> for ApiError {
    fn from(e: naksha_query::embed::Error) -> Self {
        use naksha_query::embed::Error as E;
        match e {
            E::UnknownModel(name) => Self::invalid(format!("unknown model {name:?}; GET /v1/models lists them")),
            E::InvalidArgument(m) => Self::invalid(m),
            E::MissingFile { .. } | E::BadModel { .. } | E::Device(_) | E::Tokenizer(_) | E::Candle(_) | E::Io(_) => {
                Self::internal(e)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = crate::http::ErrorBody {
            error: crate::http::ErrorDetail { code: self.kind.code().to_owned(), message: self.message },
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        (self.kind.status(), [("content-type", "application/json")], text).into_response()
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        tonic::Status::new(e.kind.grpc(), e.message)
    }
}
