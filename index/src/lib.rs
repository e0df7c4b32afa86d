//! Naksha's indexes: SIMD distance kernels, a purpose-built HNSW graph, int8
//! scalar quantization, payload indexes, and the immutable on-disk
//! [`segment::Segment`] that ties them together.
//!
//! | module        | question it answers                                        |
//! |---------------|------------------------------------------------------------|
//! | [`distance`]  | how far apart are two vectors? (simsimd + scalar reference) |
//! | [`metric`]    | which distance, and is this vector acceptable?             |
//! | [`hnsw`]      | which stored vectors are near this one?                    |
//! | [`quant`]     | how do I store vectors in a quarter of the bytes?          |
//! | [`payload`]   | which points have `lang = "en"`?                           |
//! | [`bitset`]    | sets of point offsets                                      |
//! | [`text`]      | which points' text matches these words best (BM25)?       |
//! | [`segment`]   | one immutable, mmap'd unit of points with all of the above |
//!
//! ```
//! use naksha_index::{hnsw::{HnswBuilder, HnswParams}, metric::Metric};
//! let dim = 4;
//! let vectors: Vec<f32> = (0..400).map(|i| ((i * 7919) % 101) as f32 / 101.0).collect();
//! let graph = HnswBuilder::build(dim, Metric::L2, HnswParams::default(), vectors.clone());
//! let hits = graph.search(&vectors[..dim], 3, 32);
//! assert_eq!(hits[0].node, 0);
//! ```
#![warn(missing_docs)]

pub mod bitset;
pub mod distance;
mod error;
pub mod hnsw;
pub mod metric;
pub mod payload;
pub mod quant;
pub mod segment;
pub mod stored;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod topk;

pub use error::{Error, Result};
pub use stored::Stored;
