//! Durable file-system helpers: atomic replace and directory fsync.

use std::path::Path;

use crate::Result;

/// `fsync` a directory so that renames and creations inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fs_err::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Replace `path` with `bytes` atomically: write a temporary file beside it,
/// `fsync` it, rename it over `path`, then `fsync` the directory. A crash at any
/// point leaves either the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut file = fs_err::File::create(&tmp)?;
        crate::fault::write_all("section.write", path, &mut file, bytes)?;
        file.sync_all()?;
    }
    crate::fault::check("atomic.before_rename", path)?;
    fs_err::rename(&tmp, path)?;
    crate::fault::check("atomic.after_rename", path)?;
    sync_dir(dir)
}

/// Ask the kernel to start writing `len` bytes of `file` from `offset` to disk
/// without waiting for them (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`),
/// so that a long sequential write overlaps the disk and its closing `fsync`
/// finds little left to do. Only a hint: it makes nothing durable, does
/// nothing elsewhere, and a failure is ignored (the `fsync` reports real ones).
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
        // SAFETY: the call reads and writes no memory of this process; the
        // descriptor is open for its whole duration (borrowed from `file`).
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Counts the bytes of a long sequential write and starts their writeback
/// ([`start_writeback`]) every `every` bytes, so the write overlaps the disk.
#[derive(Debug)]
pub struct Writeback {
    every: u64,
    written: u64,
    from: u64,
}

impl Writeback {
    /// A file with nothing written yet; writeback starts every `every` bytes.
    pub fn every(every: u64) -> Self {
        Writeback { every, written: 0, from: 0 }
    }

    /// `n` more bytes went to the end of `file`.
    pub fn wrote(&mut self, file: &std::fs::File, n: u64) {
        self.written += n;
        if self.written - self.from >= self.every {
            start_writeback(file, self.from, self.written - self.from);
            self.from = self.written;
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}
