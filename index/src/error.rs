use naksha_storage::point::PointId;

/// Errors returned by `naksha-index`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A vector has the wrong number of dimensions. Reject the request.
    #[error("point {id}: vector has {got} dimensions, the collection expects {expected}")]
    WrongDimension {
        /// The offending point (or `query`).
        id: String,
        /// Collection dimension.
        expected: usize,
        /// Dimension received.
        got: usize,
    },
    /// A vector holds NaN or infinity. Reject the request.
    #[error("point {id}: vector element {index} is not a finite number")]
    NonFinite {
        /// The offending point (or `query`).
        id: String,
        /// Position of the first bad element.
        index: usize,
    },
    /// A zero vector cannot be normalised for cosine. Reject the request.
    #[error("point {id}: a zero vector has no direction, so cosine similarity is undefined")]
    ZeroVector {
        /// The offending point (or `query`).
        id: String,
    },
    /// A text query or text-index setting is malformed. Reject the request; the
    /// message names the problem.
    #[error("invalid argument: {0}")]
    InvalidQuery(String),
    /// The full-text engine failed (I/O, damaged index files). Retry; restore on repeat.
    #[error("text index: {0}")]
    Text(String),
    /// The storage layer failed (I/O or corruption).
    #[error(transparent)]
    Storage(#[from] naksha_storage::Error),
    /// A segment file is internally inconsistent. Restore from backup.
    #[error("corrupt segment {path}: {reason}")]
    CorruptSegment {
        /// The segment directory or file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Name used for a point in error messages.
    pub fn point_name(id: Option<&PointId>) -> String {
        id.map_or_else(|| "query".to_owned(), |i| i.to_string())
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
