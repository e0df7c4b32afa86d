use std::path::PathBuf;

/// Errors returned by `naksha-storage`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A checksum, magic number or length did not match. Not retryable: the file
    /// is damaged; restore the collection from a backup.
    #[error("corrupt file {path}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The file was written by a format version this build cannot read.
    /// Upgrade (or downgrade) Naksha to a version that reads it.
    #[error("unsupported format version {found} in {path} (this build reads {oldest}..={newest})")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version stored in the file.
        found: u32,
        /// Oldest version this build reads.
        oldest: u32,
        /// Newest version this build reads.
        newest: u32,
    },
    /// Bytes handed to a decoder were malformed. Reject the input.
    #[error("malformed record: {0}")]
    Decode(String),
    /// A previous write or fsync failed, so the log may be incomplete on disk; no
    /// further writes are accepted. Restart the process to recover from the log.
    #[error("write-ahead log is unusable after an earlier I/O failure: {0}")]
    WalPoisoned(String),
    /// `fsync` of the log failed. Records written since the last successful
    /// `fsync` may or may not be on disk: the outcome of the writes waiting for
    /// it is unknown, and the log takes no further records until reopened.
    #[error("fsync of the write-ahead log failed (outcome of this write unknown): {0}")]
    SyncFailed(std::io::Error),
    /// An operating-system I/O error (disk full, permissions, ...). Often retryable.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A JSON document (manifest) failed to parse.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Parser message.
        source: serde_json::Error,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether this is the disk running out of space (`ENOSPC`, `EDQUOT`).
    pub fn is_no_space(&self) -> bool {
        match self {
            Error::Io(e) | Error::SyncFailed(e) => {
                matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
            }
            _ => false,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt { path: path.into(), reason: reason.into() }
    }
}
