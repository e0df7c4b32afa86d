//! Durable storage for Naksha collections: the write-ahead log, checksummed
//! section files read in place through `mmap`, and the atomically replaced
//! manifest that says which files make up a collection.
//!
//! Nothing here knows about vectors indexes or queries: higher crates store
//! their structures as sections of a [`SectionFile`] and their operations as
//! [`WalOp`]s.
//!
//! - [`wal::Wal`]: append operations, group-commit `fsync`, replay, torn-tail repair.
//! - [`section::SectionFile`]: one immutable file = header + CRC32C-checked sections.
//! - [`manifest::Manifest`]: the list of live segments, swapped by rename.
//! - [`point`]: point ids, points and their binary codec (shared by WAL and segments).
//!
//! ```
//! use naksha_storage::{point::{Point, PointId}, wal::{Wal, WalOp, WalOptions}};
//! # fn main() -> naksha_storage::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let (wal, replay) = Wal::open(dir.path(), 0, WalOptions::default())?;
//! assert!(replay.is_empty());
//! let op = WalOp::Upsert(vec![Point::new(PointId::Num(1), vec![0.5, 1.0], serde_json::json!({"a": 1}))]);
//! let seq = wal.append(&op)?;
//! wal.sync_through(seq)?; // durable from here on
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod dirs;
mod error;
pub mod fault;
pub mod manifest;
pub mod mmap;
pub mod point;
pub mod section;
pub mod wal;

pub use error::{Error, Result};
