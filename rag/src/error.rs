//! The errors of `naksha-rag`, classified with the engine's [`ErrorKind`] so
//! front ends map them in the same one match as every engine error.

use naksha_query::ErrorKind;

/// Errors returned by `naksha-rag`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Retrieval or embedding failed in the engine; its kind says why.
    #[error(transparent)]
    Query(#[from] naksha_query::Error),
    /// The request is malformed (empty question, limits, generator settings). Reject it.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The generator's endpoint failed (unreachable, timed out, an error status,
    /// a malformed reply). Retry later or fix the generator settings.
    #[error("generator: {0}")]
    Generator(String),
    /// The caller stopped listening (a streaming client went away).
    #[error("cancelled: the caller went away")]
    Cancelled,
}

impl From<naksha_query::embed::Error> for Error {
    fn from(e: naksha_query::embed::Error) -> Self {
        Error::Query(e.into())
    }
}

impl Error {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Query(e) => e.kind(),
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Generator(_) => ErrorKind::Upstream,
            Error::Cancelled => ErrorKind::Cancelled,
        }
    }

    /// True when the caller sent something invalid (as opposed to a failure elsewhere).
    pub fn is_client_error(&self) -> bool {
        match self {
            Error::Query(e) => e.is_client_error(),
            Error::InvalidArgument(_) => true,
            Error::Generator(_) | Error::Cancelled => false,
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
