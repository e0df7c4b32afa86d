//! Local sentence embeddings for Naksha: text in, vectors out, no model hub.
//!
//! Start at [`Models`]: open a models folder (one sub-folder per model, in
//! Hugging Face layout), then ask it for an [`Embedder`] by name and call
//! [`Embedder::embed`]. Long documents are cut into token windows by
//! [`chunk::chunk_spans`] (through [`Embedder::chunk`]) before they are embedded.
//!
//! | module    | job                                                                  |
//! |-----------|----------------------------------------------------------------------|
//! | `model`   | read a model folder, tokenise, batch, pool, normalise                |
//! | `encoder` | the CPU forward pass: packed sequences, fused int16/f32 matmuls, vector kernels |
//! | [`batch`] | plan length-bucketed batches so little compute goes to padding       |
//! | [`chunk`] | cut text into overlapping token windows at paragraph/sentence breaks |
//! | `registry`| the models folder: list, load and look up models by name            |
//!
//! ```no_run
//! let models = naksha_embed::Models::open("models".as_ref(), naksha_embed::DeviceKind::Cpu)?;
//! let model = models.get("all-minilm-l6-v2")?;
//! let vectors = model.embed(&["a red apple", "a green pear"])?;
//! assert_eq!(vectors[0].len(), model.dim());
//! # Ok::<(), naksha_embed::Error>(())
//! ```
#![warn(missing_docs)]

pub mod batch;
pub mod chunk;
mod encoder;
mod error;
mod model;
mod pooling;
mod registry;
#[cfg(feature = "testing")]
pub mod testing;

pub use chunk::{Chunk, ChunkConfig};
pub use error::{Error, Result};
pub use model::{DeviceKind, Embedder, ModelInfo};
pub use pooling::Pooling;
pub use registry::Models;
