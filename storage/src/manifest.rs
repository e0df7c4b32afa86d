//! The manifest: which segments make up a collection, up to which WAL sequence
//! number they hold every write, and the collection's configuration.
//!
//! Stored as JSON in `MANIFEST` and replaced atomically
//! ([`crate::dirs::write_atomic`]: temp file, fsync, rename, directory fsync),
//! so a reader sees either the old or the new manifest, never a mix.
//!
//! | field             | meaning                                                       |
//! |-------------------|---------------------------------------------------------------|
//! | `format_version`  | [`FORMAT_VERSION`]                                            |
//! | `config`          | the collection configuration (owned by higher layers)         |
//! | `durable_seq`     | every WAL record `<= durable_seq` is in the listed segments   |
//! | `next_segment_id` | id for the next segment directory                             |
//! | `segments`        | `[{id, points, deletes}]`: segment dir `seg-{id}` and its deletion bitmap file, if any |

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{dirs, Error, Result};

/// Current manifest format version.
pub const FORMAT_VERSION: u32 = 1;
/// Oldest manifest format version this build reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;
/// File name of the manifest inside a collection directory.
pub const FILE_NAME: &str = "MANIFEST";

/// One live segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Segment id; its files live in `seg-{id:08}/`.
    pub id: u64,
    /// Points stored in the segment, deleted ones included.
    pub points: u64,
    /// Name of the deletion bitmap file in the segment directory, if any point is deleted.
    #[serde(default)]
    pub deletes: Option<String>,
}

/// The manifest of one collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub format_version: u32,
    /// Collection configuration (opaque to this crate).
    pub config: serde_json::Value,
    /// All WAL records up to this sequence number are reflected in the segments.
    pub durable_seq: u64,
    /// Next segment id to allocate.
    pub next_segment_id: u64,
    /// Live segments, oldest first.
    pub segments: Vec<SegmentEntry>,
}

impl Manifest {
    /// A manifest for a new, empty collection.
    pub fn new(config: serde_json::Value) -> Self {
        Self { format_version: FORMAT_VERSION, config, durable_seq: 0, next_segment_id: 1, segments: Vec::new() }
    }

    /// Read the manifest from `dir`, or `None` if there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(FILE_NAME);
        let bytes = match fs_err::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Self::parse(&bytes, &path).map(Some)
    }

    /// Parse the bytes of the manifest file at `path` (named in errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let path = path.to_owned();
        let m: Manifest = serde_json::from_slice(bytes).map_err(|source| Error::Json { path: path.clone(), source })?;
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&m.format_version) {
            return Err(Error::UnsupportedVersion {
                path,
                found: m.format_version,
                oldest: OLDEST_READABLE_VERSION,
                newest: FORMAT_VERSION,
            });
        }
        Ok(m)
    }

    /// Atomically replace the manifest in `dir`.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|source| Error::Json { path: dir.join(FILE_NAME), source })?;
        dirs::write_atomic(&dir.join(FILE_NAME), &bytes)
    }
}

/// Directory name of segment `id`.
pub fn segment_dir_name(id: u64) -> String {
    format!("seg-{id:08}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_load() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Manifest::load(dir.path()).unwrap().is_none());
        let mut m = Manifest::new(serde_json::json!({"dim": 4}));
        m.segments.push(SegmentEntry { id: 1, points: 10, deletes: Some("deletes-3.bin".into()) });
        m.durable_seq = 42;
        m.store(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap().unwrap(), m);
        assert!(!dir.path().join("MANIFEST.tmp").exists());
    }

    #[test]
    fn garbage_manifest_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join(FILE_NAME), b"{\"format_version\": 1, \"con").unwrap();
        assert!(matches!(Manifest::load(dir.path()), Err(Error::Json { .. })));
        fs_err::write(
            dir.path().join(FILE_NAME),
            br#"{"format_version": 99, "config": null, "durable_seq": 0, "next_segment_id": 1, "segments": []}"#,
        )
        .unwrap();
        assert!(matches!(Manifest::load(dir.path()), Err(Error::UnsupportedVersion { .. })));
    }
}
