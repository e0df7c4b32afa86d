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
    /// Something else the request names does not exist (a snapshot).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what exists (a restore onto a collection that exists).
    #[error("{0}")]
    Conflict(String),
    /// The collection cannot take this request now (its memtable is full and
    /// flushes are failing, e.g. on a full disk). Retry once the cause is fixed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Another process holds the data directory. Stop it or use another directory.
    #[error("data directory {0} is locked by another process")]
    Locked(std::path::PathBuf),
    /// The engine found its own state inconsistent (a bug, not an I/O failure). Report it.
    #[error("internal inconsistency: {0}")]
    Internal(String),
}

/// What kind of failure an [`Error`] is, independent of any protocol: front
/// ends map each kind to their status codes in one exhaustive match, and never
/// look at the variants of the crates below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (bad filter, config, name, query syntax, unknown model).
    InvalidArgument,
    /// Well-formed but unusable data (a vector of the wrong dimension, NaN, a zero cosine vector).
    Unprocessable,
    /// No such collection.
    NotFound,
    /// A collection by that name exists with another configuration.
    AlreadyExists,
    /// The data directory's disk is full; the request changed nothing.
    NoSpace,
    /// The collection's WAL failed to sync and takes no writes until a restart.
    ReadOnly,
    /// Cannot serve this now (memtable full while flushes fail, directory locked).
    Unavailable,
    /// An upstream service the request needed (the RAG generator of
    /// `naksha-rag`) failed.
    Upstream,
    /// The caller went away (a streaming client of `naksha-rag`).
    Cancelled,
    /// A server-side failure (I/O, corruption, inference, a bug); details belong in the log.
    Internal,
}

impl Error {
    /// The classification of this error (the one place that looks inside the
    /// index, storage and embed errors).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Index(e) => match e {
                naksha_index::Error::WrongDimension { .. }
                | naksha_index::Error::NonFinite { .. }
                | naksha_index::Error::ZeroVector { .. } => ErrorKind::Unprocessable,
                naksha_index::Error::InvalidQuery(_) => ErrorKind::InvalidArgument,
                naksha_index::Error::Storage(se) => storage_kind(se),
                naksha_index::Error::CorruptSegment { .. } | naksha_index::Error::Text(_) => ErrorKind::Internal,
            },
            Error::Storage(se) => storage_kind(se),
            Error::Embed(e) => match e {
                naksha_embed::Error::UnknownModel(_) | naksha_embed::Error::InvalidArgument(_) => {
                    ErrorKind::InvalidArgument
                }
                naksha_embed::Error::MissingFile { .. }
                | naksha_embed::Error::BadModel { .. }
                | naksha_embed::Error::Device(_)
                | naksha_embed::Error::Tokenizer(_)
                | naksha_embed::Error::Candle(_)
                | naksha_embed::Error::Io(_) => ErrorKind::Internal,
            },
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::CollectionNotFound(_) | Error::NotFound(_) => ErrorKind::NotFound,
            Error::CollectionExists(_) | Error::Conflict(_) => ErrorKind::AlreadyExists,
            Error::Unavailable(_) | Error::Locked(_) => ErrorKind::Unavailable,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

fn storage_kind(e: &naksha_storage::Error) -> ErrorKind {
    use naksha_storage::Error as E;
    match e {
        // A failed fsync leaves the log read-only, even when the disk was full.
        E::SyncFailed(_) | E::WalPoisoned(_) => ErrorKind::ReadOnly,
        _ if e.is_no_space() => ErrorKind::NoSpace,
        E::Corrupt { .. } | E::UnsupportedVersion { .. } | E::Decode(_) | E::Io(_) | E::Json { .. } => {
            ErrorKind::Internal
        }
    }
}

impl Error {
    /// True when the caller sent something invalid (as opposed to a server-side failure).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::InvalidArgument | ErrorKind::Unprocessable | ErrorKind::NotFound | ErrorKind::AlreadyExists
        )
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
