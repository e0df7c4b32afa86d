use std::path::PathBuf;

/// Errors returned by `naksha-embed`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the model folder must hold is missing. Install the model again (see the README).
    #[error("model {model:?}: missing file {path}")]
    MissingFile {
        /// Model name (its folder name).
        model: String,
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A model file exists but cannot be used (bad JSON, unsupported setting, wrong
    /// tensors). Replace the file; the message names it and the problem.
    #[error("model {model:?}: {path}: {reason}")]
    BadModel {
        /// Model name.
        model: String,
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No model by that name is installed. Install it or pick one from the list.
    #[error("unknown model {0:?}")]
    UnknownModel(String),
    /// The caller sent something unusable (empty input, bad chunking settings). Reject it.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The requested device is not available in this build or on this machine.
    #[error("device {0}")]
    Device(String),
    /// Tokenisation failed (not expected for valid UTF-8 text). Report it.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The tensor runtime failed while encoding. Report it.
    #[error("inference: {0}")]
    Candle(#[from] candle_core::Error),
    /// Reading the models folder failed. Check permissions; retry.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
