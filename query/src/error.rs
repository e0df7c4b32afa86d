/// Errors returned by `naksha-query`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A vector was rejected (wrong dimension, NaN, zero for cosine) or an index
    /// file is damaged. [`Error::is_client_error`] tells which.
    #[error(transparent)]
    Index(#[from] naksha_index::Error),
    /// Storage failed (I/O, corruption, poisoned WAL). Retry I/O errors; restore on corruption.
    #[error(transparent)]
    Storage(#[from] naksha_storage::Error),
    /// The request is malformed (bad filter, bad config, bad name). Reject it.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No collection by that name. Create it first.
    #[error("collection {0:?} not found")]
    CollectionNotFound(String),
    /// A collection by that name exists with a different configuration.
    #[error("collection {0:?} already exists with a different configuration")]
    CollectionExists(String),
    /// Embedding text failed: an unknown model is a client error, an inference
    /// failure a server one ([`Error::is_client_error`] tells).
    #[error(transparent)]
    Embed(#[from] naksha_embed::Error),
    /// The RAG generator's endpoint failed (unreachable, timed out, an error
    /// status, a malformed reply). Retry later or fix the generator settings.
    #[error("generator: {0}")]
    Generator(String),
    /// The caller stopped listening (a streaming client went away).
    #[error("cancelled: the caller went away")]
    Cancelled,
    /// The collection cannot take this request now (its memtable is full and
    /// flushes are failing, e.g. on a full disk). Retry once the cause is fixed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Another process holds the data directory. Stop it or use another directory.
    #[error("data directory {0} is locked by another process")]
    Locked(std::path::PathBuf),
}

impl Error {
    /// True when the caller sent something invalid (as opposed to a server-side failure).
    pub fn is_client_error(&self) -> bool {
        match self {
            Error::Index(e) => matches!(
                e,
                naksha_index::Error::WrongDimension { .. }
                    | naksha_index::Error::NonFinite { .. }
                    | naksha_index::Error::ZeroVector { .. }
                    | naksha_index::Error::InvalidQuery(_)
            ),
            Error::Embed(e) => {
                matches!(e, naksha_embed::Error::UnknownModel(_) | naksha_embed::Error::InvalidArgument(_))
            }
            Error::InvalidArgument(_) | Error::CollectionNotFound(_) | Error::CollectionExists(_) => true,
            Error::Storage(_) | Error::Locked(_) | Error::Generator(_) | Error::Cancelled | Error::Unavailable(_) => {
                false
            }
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
