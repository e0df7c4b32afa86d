//! Vector quantization: fewer bytes per vector for the graph walk, with
//! rescoring on the full-precision vectors.

pub mod sq8;

use serde::{Deserialize, Serialize};

/// Quantization setting of a collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// Full-precision `f32` everywhere.
    #[default]
    None,
    /// int8 scalar quantization for the walk, `f32` rescoring.
    Int8,
}
