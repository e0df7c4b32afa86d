//! The one place in `naksha-storage` that maps files into memory.
//!
//! Files mapped here are immutable once written (segment files are never
//! modified in place, only replaced by new files), which is what makes the
//! mapping sound to read as a `&[u8]`.

use std::path::Path;

use memmap2::Mmap;

use crate::Result;

/// A read-only memory map of a whole file.
#[derive(Debug)]
pub struct MappedBytes {
    map: Option<Mmap>,
}

impl MappedBytes {
    /// Map `path` read-only. An empty file maps to an empty slice.
    pub fn open(path: &Path) -> Result<Self> {
        Self::map(&fs_err::File::open(path)?)
    }

    /// Map the open file `file` read-only, as [`MappedBytes::open`] does.
    pub fn map(file: &fs_err::File) -> Result<Self> {
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(Self { map: None });
        }
        // SAFETY: Naksha never modifies a mapped file after it has been written and
        // renamed into place; files are only replaced by new files and then unlinked,
        // which leaves existing mappings valid. External modification of the data
        // directory while the server runs is unsupported (as for every database).
        let map = unsafe { Mmap::map(file.file())? };
        Ok(Self { map: Some(map) })
    }

    /// The mapped bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
