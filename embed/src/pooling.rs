//! How token vectors become one sentence vector (a model's
//! `1_Pooling/config.json`), shared by the model loader and the encoders.

use serde::{Deserialize, Serialize};

/// How token vectors become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over the real (unpadded) tokens.
    Mean,
    /// The first (`[CLS]`) token.
    Cls,
    /// Element-wise maximum over the real tokens.
    Max,
}
